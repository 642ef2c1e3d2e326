"""Demo mode for the AWS source: the project's recorded responses served by botocore ``Stubber``.

``adapters/demo_payloads/aws/manifest.json`` lists, per scenario ("fetch", "backfill"), the calls in the
order the source makes them and the file holding each response. The responses go through the same parsing
code as live ones; Stubber also validates them against the service model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from adapters.aws_calls import ClientFactory
from adapters.base import DEMO_PAYLOADS

DEMO_DIR = DEMO_PAYLOADS / "aws"


def manifest(root: Path = DEMO_DIR) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "manifest.json").read_text())
    return data


def stubbed_client(service: str, region: str) -> tuple[Any, Stubber]:
    """A real boto3 client with throwaway credentials and a Stubber attached (not yet activated)."""
    client = boto3.client(  # type: ignore[call-overload]
        service, region_name=region, aws_access_key_id="demo", aws_secret_access_key="demo"
    )
    return client, Stubber(client)


def demo_factory(scenario: str = "fetch", root: Path = DEMO_DIR) -> ClientFactory:
    """Clients whose responses are the recorded ones for ``scenario``, queued in call order."""
    stubs: dict[tuple[str, str], tuple[Any, Stubber]] = {}
    for call in manifest(root)[scenario]:
        slot = (call["service"], call["region"])
        if slot not in stubs:
            stubs[slot] = stubbed_client(*slot)
        response = json.loads((root / call["file"]).read_text())
        stubs[slot][1].add_response(call["operation"], response)
    for _client, stubber in stubs.values():
        stubber.activate()

    def make(service: str, region: str) -> Any:
        if (service, region) not in stubs:
            # an unrecorded client: every call on it fails as "no recorded response"
            client, stubber = stubbed_client(service, region)
            stubber.activate()
            stubs[(service, region)] = (client, stubber)
        return stubs[(service, region)][0]

    return make
