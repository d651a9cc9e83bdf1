"""Commands and files through the published OpenSandbox Python SDK, unmodified, against Tidebox's execd.

Usage: python sdk_execd.py async|sync   (TIDEBOX_URL, TIDEBOX_API_KEY, TIDEBOX_IMAGE in the environment)

Sandbox.create with its health check on -> run echo -> stderr and exit code -> background status and
logs -> interrupt -> 20 MB write/read round trip -> directories, list, info, move, search, replace,
delete -> kill. Prints one JSON line per step; any unexpected answer raises, so the exit code is the
verdict.
"""

import asyncio
import json
import os
import sys
import time
from datetime import timedelta

from opensandbox import Sandbox
from opensandbox.config import ConnectionConfig
from opensandbox.config.connection_sync import ConnectionConfigSync
from opensandbox.exceptions import SandboxApiException
from opensandbox.models.execd import RunCommandOpts
from opensandbox.models.filesystem import (
    ContentReplaceEntry,
    DirectoryListEntry,
    MoveEntry,
    SearchEntry,
    WriteEntry,
)
from opensandbox.sync.sandbox import SandboxSync

URL = os.environ["TIDEBOX_URL"]
KEY = os.environ["TIDEBOX_API_KEY"]
IMAGE = os.environ.get("TIDEBOX_IMAGE", "tidebox/busybox:latest")
DEADLINE_S = 30
BLOB = os.urandom(20 * 1024 * 1024)


def step(name, **fields):
    print(json.dumps({"step": name, **fields}, default=str), flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def texts(messages):
    return [m.text for m in messages]


class Steps:
    """The same checks for both APIs: `call` awaits in async mode and calls in sync mode."""

    def __init__(self, sandbox, call, sleep):
        self.s = sandbox
        self.call = call
        self.sleep = sleep

    async def run(self):
        s, call = self.s, self.call
        hi = await call(s.commands.run("echo hi"))
        expect(texts(hi.logs.stdout) == ["hi"] and hi.exit_code == 0, f"echo hi: {hi}")
        step("echo", stdout=texts(hi.logs.stdout))

        bad = await call(s.commands.run("echo oops >&2; exit 3"))
        expect(texts(bad.logs.stderr) == ["oops"] and bad.exit_code == 3, f"stderr and exit 3: {bad}")
        step("stderr", exit_code=bad.exit_code)

        bg = await call(s.commands.run("echo started; sleep 1; echo finished", opts=RunCommandOpts(background=True)))
        deadline = time.monotonic() + DEADLINE_S
        while (await call(s.commands.get_command_status(bg.id))).running:
            expect(time.monotonic() < deadline, "background command ends")
            await self.sleep(0.1)
        status = await call(s.commands.get_command_status(bg.id))
        logs = await call(s.commands.get_background_command_logs(bg.id))
        expect(status.exit_code == 0 and logs.content == "started\nfinished\n", f"background: {status} {logs}")
        step("background", exit_code=status.exit_code, cursor=logs.cursor)

        sleeper = await call(s.commands.run("sleep 60", opts=RunCommandOpts(background=True)))
        asked = time.monotonic()
        await call(s.commands.interrupt(sleeper.id))
        while (await call(s.commands.get_command_status(sleeper.id))).running:
            expect(time.monotonic() - asked < 5, "interrupted command ends")
            await self.sleep(0.02)
        took = time.monotonic() - asked
        expect(took < 1, f"interrupt within 1 s, took {took:.3f} s")
        step("interrupted", seconds=round(took, 3))

        await call(s.files.write_files([WriteEntry(path="/data/blob.bin", data=BLOB, mode=644)]))
        back = await call(s.files.read_bytes("/data/blob.bin"))
        expect(back == BLOB, "20 MB round trip is byte-for-byte")
        step("roundtrip", bytes=len(back))

        await call(s.files.create_directories([WriteEntry(path="/work/src", mode=755)]))
        await call(
            s.files.write_files(
                [WriteEntry(path="/work/src/a.txt", data="hello hello\n"), WriteEntry(path="/work/src/b.py", data="print(1)\n")]
            )
        )
        listed = [e.path for e in await call(s.files.list_directory(DirectoryListEntry(path="/work/src")))]
        expect(listed == ["/work/src/a.txt", "/work/src/b.py"], f"listed: {listed}")
        info = (await call(s.files.get_file_info(["/work/src/a.txt"])))["/work/src/a.txt"]
        expect(info.size == 12 and info.mode == 755 and info.owner == "root", f"info: {info}")
        found = [e.path for e in await call(s.files.search(SearchEntry(path="/work", pattern="*.py")))]
        expect(found == ["/work/src/b.py"], f"search: {found}")
        await call(s.files.replace_contents([ContentReplaceEntry(path="/work/src/a.txt", old_content="hello", new_content="bye")]))
        expect(await call(s.files.read_file("/work/src/a.txt")) == "bye bye\n", "replaced")
        await call(s.files.move_files([MoveEntry(source="/work/src/b.py", destination="/work/b.py")]))
        await call(s.files.delete_files(["/work/src/a.txt"]))
        await call(s.files.delete_directories(["/work/src"]))
        remaining = [e.path for e in await call(s.files.list_directory(DirectoryListEntry(path="/work")))]
        expect(remaining == ["/work/b.py"], f"after move and deletes: {remaining}")
        try:
            await call(s.files.read_file("/work/src/a.txt"))
            raise AssertionError("a deleted file still reads")
        except SandboxApiException as err:
            expect(err.status_code == 404, f"deleted file is 404, got {err.status_code}")
        step("files", remaining=remaining)


async def run_async():
    config = ConnectionConfig(domain=URL, api_key=KEY)
    sandbox = await Sandbox.create(
        IMAGE,
        entrypoint=["tail", "-f", "/dev/null"],
        resource={"cpu": "500m", "memory": "128Mi"},
        timeout=timedelta(minutes=5),
        connection_config=config,
    )
    step("created", id=sandbox.id)
    try:

        async def call(x):
            return await x

        await Steps(sandbox, call, asyncio.sleep).run()
        await sandbox.kill()
        step("killed", id=sandbox.id)
    finally:
        await sandbox.close()


def run_sync():
    config = ConnectionConfigSync(domain=URL, api_key=KEY)
    sandbox = SandboxSync.create(
        IMAGE,
        entrypoint=["tail", "-f", "/dev/null"],
        resource={"cpu": "500m", "memory": "128Mi"},
        timeout=timedelta(minutes=5),
        connection_config=config,
    )
    step("created", id=sandbox.id)
    try:

        async def call(x):
            return x

        async def sleep(seconds):
            time.sleep(seconds)

        asyncio.run(Steps(sandbox, call, sleep).run())
        sandbox.kill()
        step("killed", id=sandbox.id)
    finally:
        sandbox.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "async":
        asyncio.run(run_async())
    elif mode == "sync":
        run_sync()
    else:
        sys.exit(f"unknown mode {mode!r}: async or sync")
    step("done", mode=mode)
