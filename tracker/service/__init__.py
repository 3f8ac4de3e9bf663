"""Running the tracker: wiring a Config to library objects (``app``), the long-lived scheduler
(``scheduler``), status, health and metrics, and daily maintenance (retention, backups).

May import every stage below it; only ``demo`` and ``cli`` import it.
"""
