"""The services this build can run, by name."""

from __future__ import annotations

from loadbay_distribution.app import DistributionService
from loadbay_ingestion.app import IngestionService
from loadbay_loader.app import LoaderService
from loadbay_notifier.app import NotifierService
from loadbay_platform.service import ServiceDefinition
from loadbay_reload.app import ReloadService


def service_definition(name: str) -> ServiceDefinition:
    factories = {
        "reload": ReloadService,
        "loader": LoaderService,
        "notifier": NotifierService,
        "distribution": DistributionService,
        "ingestion": IngestionService,
    }
    if name not in factories:
        raise KeyError(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}")
    return factories[name]()


SERVICE_NAMES = ("reload", "loader", "notifier", "distribution", "ingestion")
