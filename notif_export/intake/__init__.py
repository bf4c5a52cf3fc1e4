"""The intake service: the notification platform's trigger and event API, recording each call in the source."""
