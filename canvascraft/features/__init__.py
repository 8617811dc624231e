"""Feature palettes served by Feast.

``definitions`` builds the Feast objects (entity, sources, views, services) from palettes; ``store`` opens the
repo, applies them, writes offline rows incrementally, materializes and retrieves. Both import feast (slow, ~15 s
cold), so this package imports neither eagerly: ``from canvascraft.features import store``.
"""
