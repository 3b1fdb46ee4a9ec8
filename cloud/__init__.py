"""Cloud: ingest workers, InfluxDB store, REST API + dashboard, training + model registry."""
