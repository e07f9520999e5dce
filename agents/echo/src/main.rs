//! `sentinel-echo-agent`: allows every request and marks it, so you can see an agent is in the
//! path: the upstream gets `x-echo-agent: <agent id>` and the client gets the same header on
//! the response. Every request is logged at info level.

use clap::Parser;
use sentinel_agent_sdk::prelude::*;

/// Allows everything and adds `x-echo-agent` to the request and the response.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Header added to the request and the response.
    #[arg(long, default_value = "x-echo-agent")]
    header: String,
}

struct Echo {
    agent_id: String,
    header: String,
}

impl Agent for Echo {
    async fn on_request_headers(&self, req: &RequestHeaders, ctx: &mut RequestContext) -> Verdict {
        tracing::info!(connection = ctx.connection_id(), method = %req.method, uri = %req.uri, client = %req.client_addr, "request");
        Verdict::allow()
            .set_request_header(&self.header, &self.agent_id)
            .set_response_header(&self.header, &self.agent_id)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sentinel_agent_sdk::init_tracing();
    let cli = Cli::parse();
    let config = cli.connect.to_config()?;
    let agent = Echo {
        agent_id: config.agent_id.clone(),
        header: cli.header,
    };
    Runner::new(agent, config)?.run_until_signal().await?;
    Ok(())
}
