"""The progress bar of long commands: drawn on a terminal only, with the share done, rows and time."""

from __future__ import annotations

import io

from cryptostock.progress_bar import ProgressBar, spinning
from tests.api.test_components import FakeClock as Clock


def test_not_a_terminal_draws_nothing() -> None:
    out = io.StringIO()  # isatty() is False: a pipe or a file
    bar = ProgressBar("export bars", total=10, stream=out)
    bar.update(5, rows=100)
    bar.close()
    assert not bar.enabled and out.getvalue() == ""


def test_bar_shows_share_rows_and_elapsed_and_redraws_at_most_every_interval() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar("export bars", total=200, stream=out, enabled=True, interval=0.5, clock=clock)
    clock.now += 1.5
    bar.update(50, rows=1200)
    bar.update(60, rows=1300)  # within the interval: not redrawn
    assert out.getvalue() == "\r\x1b[2Kexport bars  [██████░░░░░░░░░░░░░░░░░░]  25%  1,200 rows  1.5 s"
    clock.now += 0.5
    bar.update(200)
    assert out.getvalue().endswith("[████████████████████████] 100%  1,300 rows  2.0 s")
    bar.close()
    assert out.getvalue().endswith("\r\x1b[2K")


def test_without_a_total_it_spins() -> None:
    clock = Clock()
    bar = ProgressBar("applying migrations", stream=io.StringIO(), enabled=True, clock=clock)
    first = bar.render(clock.now)
    bar.update()
    assert first.startswith("applying migrations  ") and bar.render(clock.now) != first


async def test_spinning_clears_its_line() -> None:
    out = io.StringIO()
    async with spinning("migrating", stream=out) as bar:
        assert not bar.enabled  # StringIO is no terminal
    assert out.getvalue() == ""
