"""The daily digest: what each subscription has not received (``queries``), composing it
(``compose``), rendering HTML and text (``render``), sending by SMTP (``mail``) and the
exactly-once delivery around them (``delivery``).

May import ``store`` and below; not the pipeline.
"""
