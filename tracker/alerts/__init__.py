"""Alerts: messages about new stories, story updates and topic spikes, sent to chat,
email and webhooks (through Apprise) at the end of the poll cycle that stored them.

``events`` says what an alert tells about each event, ``render`` writes a message in
text, Markdown or HTML with feed text escaped, ``channels`` sends one message to one URL,
``queries`` holds the outbox, and ``delivery`` runs a round: take on events, compose,
send exactly as the digest does (record, send, confirm; re-send with the same identity).

May import ``store`` and below; not the pipeline, not the digest.
"""
