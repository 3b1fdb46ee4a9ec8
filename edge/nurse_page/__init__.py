"""The nurse-station page: live bed tiles, alarms by priority, acknowledge/silence, cloud-link banner."""

from edge.nurse_page.app import PAGE_KEY, NursePage, make_nurse_app

__all__ = ["PAGE_KEY", "NursePage", "make_nurse_app"]
