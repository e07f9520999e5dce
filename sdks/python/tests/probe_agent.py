"""The agent the tests run as a process: answers by path so a test can ask for each kind of
decision, sleeps on ``/slow?ms=N`` so a test can cancel or drain a request in flight, and logs
every handler start, cancellation and configuration it sees (the tests read its log).
"""

import asyncio
import json
import logging

from sentinel_agent import Agent, allow, block, continue_, redirect, run_agent

log = logging.getLogger("probe")


class ProbeAgent(Agent):
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id

    async def on_request_headers(self, request, ctx):
        log.info("start %d %s", request.request_id, request.path)
        if request.path == "/block":
            return block(451, "blocked by probe\n", {"x-probe": "blocked"}).rule("probe-block")
        if request.path == "/redirect":
            return redirect("/elsewhere", 307)
        if request.path == "/upper":
            return continue_()
        if request.path == "/raise":
            raise RuntimeError("probe handler failure")
        if request.path == "/slow":
            ms = int(dict(request.query_pairs()).get("ms", "1000"))
            try:
                await asyncio.sleep(ms / 1000)
            except asyncio.CancelledError:
                log.info("handler cancelled %d", request.request_id)
                raise
        return (allow().set_request_header("x-probe", self.agent_id)
                .remove_request_header("x-secret")
                .set_response_header("x-probe-response", "yes"))

    async def on_request_body_chunk(self, chunk, ctx):
        """On /upper: the body upper-cased, chunk by chunk."""
        return (allow() if chunk.is_last else continue_()).replace_chunk(chunk.data.upper())

    async def on_config(self, config):
        log.info("config %s", json.dumps(config, sort_keys=True))

    async def on_cancel(self, cancelled):
        log.info("on_cancel %d %s", cancelled.request_id, cancelled.reason)


if __name__ == "__main__":
    raise SystemExit(run_agent(lambda args: ProbeAgent(args.agent_id), "probe agent for tests"))
