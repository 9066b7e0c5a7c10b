"""Whether a closed bar's trades are provably all there (pure).

A venue with a contiguous per-symbol sequence numbers its trades 1, 2, 3, ...: a bar is complete when its
trades' sequence numbers run without a hole from one past the highest number accounted for before it (the
previous bar of its timeframe, or a trade that came too late for that bar) to its own highest. Whatever
breaks that chain -- a gap not repaired before the bar closed, a hold that expired, the first bar after the
collector started in the middle of a bucket -- makes the bar incomplete. Trades without a sequence make a
bar unverifiable. A complete bar some of whose trades were fetched over REST is repaired.
"""

from __future__ import annotations

from core.types import Coverage


def judge(
    trade_count: int, sequenced: int, low: int, high: int, repaired: int, previous: int | None
) -> Coverage:
    """A closed bar's coverage: `sequenced` of its `trade_count` trades carry a sequence, from `low` to
    `high`; `repaired` came over REST; `previous` is the highest sequence accounted for before the bar
    (None: unknown, as for the first bar seen)."""
    if sequenced < trade_count or trade_count == 0:
        return Coverage.UNVERIFIABLE
    if previous is None or low != previous + 1 or high - low + 1 != sequenced:
        return Coverage.INCOMPLETE
    return Coverage.REPAIRED if repaired else Coverage.COMPLETE
