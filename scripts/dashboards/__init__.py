"""The Grafana dashboards of grafana/dashboards/, one module each (named as its JSON file), built on
model.py; scripts/build_dashboards.py writes or checks the files."""
