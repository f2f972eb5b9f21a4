"""The web console: server-rendered pages over the same services and permissions as the
REST API, with htmx for interaction, uPlot for charts and Server-Sent Events for live values.

``install(app, settings)`` adds the console to an application: its pages under ``/console``,
its static files, and the sessions that sign people in.
"""

from m2mhub.web.app import install

__all__ = ["install"]
