"""The agent from docs/writing-an-agent.md (Python): keeps /admin internal, marks the rest."""
from sentinel_agent import Agent, allow, block, run_agent


class AdminGate(Agent):
    """Blocks /admin (or the pushed `prefix`) unless the client is on 10.0.0.0/8."""

    prefix = "/admin"

    async def on_config(self, config):
        # The proxy's `config { prefix "/internal" }` for this agent; None: back to the default.
        self.prefix = (config or {}).get("prefix", "/admin")

    async def on_request_headers(self, request, ctx):
        internal = request.client_ip.startswith("10.")
        if request.path.startswith(self.prefix) and not internal:
            return (block(403, "admin is internal\n")
                    .rule("admin-gate")
                    .reason(f"{self.prefix} requested from outside 10.0.0.0/8"))
        return allow().set_request_header("x-admin-gate", "passed")


if __name__ == "__main__":
    raise SystemExit(run_agent(lambda args: AdminGate(), "keeps /admin internal"))
