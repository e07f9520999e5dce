"""The Python twin of ``sentinel-echo-agent``: allows everything and sets ``x-echo-agent: <agent
id>`` on the request and the response, so you can check that a route reaches its agents. The
benchmark (``sentinel-bench python``) runs it beside the Rust agent that answers the same way.

    python -m sentinel_agent.examples.echo --connect unix:/run/sentinel/agents.sock --agent-id echo-py-1
"""

from sentinel_agent import Agent, allow, run_agent


class EchoAgent(Agent):
    def __init__(self, agent_id: str, header: str = "x-echo-agent") -> None:
        self.agent_id, self.header = agent_id, header

    async def on_request_headers(self, request, ctx):
        return allow().set_request_header(self.header, self.agent_id).set_response_header(self.header, self.agent_id)


def _flags(parser) -> None:
    parser.add_argument("--header", default="x-echo-agent", help="header to set (default x-echo-agent)")


def main(argv=None) -> int:
    return run_agent(lambda args: EchoAgent(args.agent_id, args.header), "Sentinel echo agent", argv, _flags)


if __name__ == "__main__":
    raise SystemExit(main())
