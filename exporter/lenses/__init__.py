"""The Lenses HQ wing: client, live stream, model, sync loop and metric families."""
