"""The notifier HTTP API, one router per resource: the emails recorded for the caller."""

from fastapi import APIRouter

from loadbay_notifier.routes import emails

ROUTERS: tuple[APIRouter, ...] = (emails.router,)
