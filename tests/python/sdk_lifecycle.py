"""One sandbox lifecycle through the published OpenSandbox Python SDK, unmodified, against Tidebox.

Usage: python sdk_lifecycle.py async|sync   (TIDEBOX_URL, TIDEBOX_API_KEY, TIDEBOX_IMAGE in the environment)

Create -> get_info -> list by state and metadata -> renew -> patch metadata -> endpoint -> pause ->
resume -> kill -> get_info is 404. Prints one JSON line per step; any unexpected answer raises, so the
exit code is the verdict. The in-sandbox health check is skipped here; sdk_execd.py runs with it on.
"""

import asyncio
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from opensandbox import Sandbox, SandboxManager
from opensandbox.config import ConnectionConfig
from opensandbox.config.connection_sync import ConnectionConfigSync
from opensandbox.exceptions import SandboxApiException
from opensandbox.models.sandboxes import SandboxFilter
from opensandbox.sync.manager import SandboxManagerSync
from opensandbox.sync.sandbox import SandboxSync

URL = os.environ["TIDEBOX_URL"]
KEY = os.environ["TIDEBOX_API_KEY"]
IMAGE = os.environ.get("TIDEBOX_IMAGE", "tidebox/busybox:latest")
DEADLINE_S = 30


def step(name, **fields):
    print(json.dumps({"step": name, **fields}, default=str), flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def check_renewed(info_before, renewed_expires_at):
    expect(renewed_expires_at > info_before.expires_at, f"renewal moved expiresAt forward ({renewed_expires_at})")
    expect(renewed_expires_at > datetime.now(timezone.utc) + timedelta(minutes=15), "renewed by about 20 minutes")


async def run_async(via):
    config = ConnectionConfig(domain=URL, api_key=KEY)
    manager = await SandboxManager.create(connection_config=config)
    sandbox = await Sandbox.create(
        IMAGE,
        entrypoint=["tail", "-f", "/dev/null"],
        resource={"cpu": "250m", "memory": "64Mi"},
        timeout=timedelta(minutes=5),
        metadata={"via": via},
        connection_config=config,
        skip_health_check=True,
    )
    sid = sandbox.id
    try:
        info = await sandbox.get_info()
        expect(info.status.state == "Running", f"created Running, got {info.status.state}")
        step("created", id=sid, state=info.status.state)

        listed = await manager.list_sandbox_infos(SandboxFilter(states=["Running"], metadata={"via": via}))
        expect([s.id for s in listed.sandbox_infos] == [sid], f"listed by state and metadata: {listed}")
        step("listed", ids=[s.id for s in listed.sandbox_infos])

        renewed = await sandbox.renew(timedelta(minutes=20))
        check_renewed(info, renewed.expires_at)
        step("renewed", expiresAt=renewed.expires_at)

        patched = await sandbox.patch_metadata({"stage": "patched"})
        expect(patched.metadata == {"via": via, "stage": "patched"}, f"metadata patched: {patched.metadata}")
        step("patched", metadata=patched.metadata)

        endpoint = await sandbox.get_endpoint(8080)
        expect(endpoint.endpoint.startswith("127.0.0.1:"), f"endpoint on the published host: {endpoint.endpoint}")
        step("endpoint", endpoint=endpoint.endpoint)

        await sandbox.pause()
        await wait_async(sandbox, "Paused")
        step("paused")
        resumed = await Sandbox.resume(sid, connection_config=config, skip_health_check=True)
        await wait_async(resumed, "Running")
        step("resumed")
        await resumed.close()

        await sandbox.kill()
        try:
            await manager.get_sandbox_info(sid)
            raise AssertionError("a killed sandbox still answers")
        except SandboxApiException as err:
            expect(err.status_code == 404, f"killed sandbox is 404, got {err.status_code}")
        step("killed", id=sid)
    finally:
        await sandbox.close()
        await manager.close()


async def wait_async(sandbox, state):
    deadline = time.monotonic() + DEADLINE_S
    while (await sandbox.get_info()).status.state != state:
        expect(time.monotonic() < deadline, f"{state} within {DEADLINE_S} s")
        await asyncio.sleep(0.1)


def run_sync(via):
    config = ConnectionConfigSync(domain=URL, api_key=KEY)
    manager = SandboxManagerSync.create(connection_config=config)
    sandbox = SandboxSync.create(
        IMAGE,
        entrypoint=["tail", "-f", "/dev/null"],
        resource={"cpu": "250m", "memory": "64Mi"},
        timeout=timedelta(minutes=5),
        metadata={"via": via},
        connection_config=config,
        skip_health_check=True,
    )
    sid = sandbox.id
    try:
        info = sandbox.get_info()
        expect(info.status.state == "Running", f"created Running, got {info.status.state}")
        step("created", id=sid, state=info.status.state)

        listed = manager.list_sandbox_infos(SandboxFilter(states=["Running"], metadata={"via": via}))
        expect([s.id for s in listed.sandbox_infos] == [sid], f"listed by state and metadata: {listed}")
        step("listed", ids=[s.id for s in listed.sandbox_infos])

        renewed = sandbox.renew(timedelta(minutes=20))
        check_renewed(info, renewed.expires_at)
        step("renewed", expiresAt=renewed.expires_at)

        patched = sandbox.patch_metadata({"stage": "patched"})
        expect(patched.metadata == {"via": via, "stage": "patched"}, f"metadata patched: {patched.metadata}")
        step("patched", metadata=patched.metadata)

        endpoint = sandbox.get_endpoint(8080)
        expect(endpoint.endpoint.startswith("127.0.0.1:"), f"endpoint on the published host: {endpoint.endpoint}")
        step("endpoint", endpoint=endpoint.endpoint)

        sandbox.pause()
        wait_sync(sandbox, "Paused")
        step("paused")
        resumed = SandboxSync.resume(sid, connection_config=config, skip_health_check=True)
        wait_sync(resumed, "Running")
        step("resumed")
        resumed.close()

        sandbox.kill()
        try:
            manager.get_sandbox_info(sid)
            raise AssertionError("a killed sandbox still answers")
        except SandboxApiException as err:
            expect(err.status_code == 404, f"killed sandbox is 404, got {err.status_code}")
        step("killed", id=sid)
    finally:
        sandbox.close()
        manager.close()


def wait_sync(sandbox, state):
    deadline = time.monotonic() + DEADLINE_S
    while sandbox.get_info().status.state != state:
        expect(time.monotonic() < deadline, f"{state} within {DEADLINE_S} s")
        time.sleep(0.1)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "async":
        asyncio.run(run_async("python-async"))
    elif mode == "sync":
        run_sync("python-sync")
    else:
        sys.exit(f"unknown mode {mode!r}: async or sync")
    step("done", mode=mode)
