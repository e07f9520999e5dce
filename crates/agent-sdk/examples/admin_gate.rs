//! The agent from docs/writing-an-agent.md: keeps /admin internal and marks what it lets through.
use clap::Parser;
use sentinel_agent_sdk::prelude::*;

/// Blocks /admin unless the client is on the 10.0.0.0/8 network.
pub struct AdminGate;

impl Agent for AdminGate {
    async fn on_request_headers(&self, req: &RequestHeaders, _ctx: &mut RequestContext) -> Verdict {
        let internal = req.client_addr.starts_with("10.");
        if req.path().starts_with("/admin") && !internal {
            return Verdict::block(403)
                .with_body("admin is internal\n")
                .rule("admin-gate")
                .reason("/admin requested from outside 10.0.0.0/8");
        }
        Verdict::allow().set_request_header("x-admin-gate", "passed")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sentinel_agent_sdk::init_tracing();
    let config = ConnectArgs::parse().to_config()?;
    Runner::new(AdminGate, config)?.run_until_signal().await?;
    Ok(())
}
