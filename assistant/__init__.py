"""Assistant: hybrid retrieval and cited answers over the ingested index."""
