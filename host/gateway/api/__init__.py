"""Local API of the host agent (loopback only): JSON + OpenAPI, SSE events, the screen.

Routes (all under ``/api/v1``; errors are ``application/problem+json`` with a stable ``code``):

====== ========================== ==================================================
GET    /status                    state, reason, download/install progress, schedule
GET    /update                    the available update's details (404 ``no_update``)
POST   /check                     check for updates now
POST   /download                  start the download
POST   /download/pause|resume|cancel
PUT    /network/cellular          ``{"allowed": bool}``: allow a metered link
GET    /preconditions             the checklist: ``[{id, ok, value, required, hint}]``
POST   /install                   ``{"confirm": true}`` required
GET    /schedule                  the scheduled install (``{"at": null}`` if none)
PUT    /schedule                  ``{"at": "ISO 8601"}``; DELETE /schedule unschedules
POST   /cancel                    stop before the point of no return (409 after it)
POST   /acknowledge               dismiss a finished campaign (back to idle)
GET    /history, /ecus            past campaigns; ECUs with versions and link health
POST   /ecus/refresh              fresh signed version reports from every ECU
GET    /signals                   vehicle signals (VSS path -> {value, ts, age_s, stale})
PUT    /signals                   ``{"signals": {"Vehicle.Speed": 0, ...}}`` (simulator)
GET    /events                    SSE; ``Last-Event-ID`` / ``?since=N`` replay, ``?follow=false``
GET    /openapi.json              the schema (committed as ``host/gateway/api/openapi.json``)
====== ========================== ==================================================

Mutating routes answer with the status after the change. ``/`` serves the screen.
"""
