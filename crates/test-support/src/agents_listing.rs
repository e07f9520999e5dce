//! Reading the proxy's `GET /agents` JSON: how many live connections an agent id has (of one
//! process, when its registration metadata names a `pid`) and how many requests are in flight
//! over them. Fetching the page is the caller's business.

use serde_json::Value;

/// Live connections of `agent_id`, counting only those registered by process `pid` (from the
/// registration metadata) when given.
pub fn connections_of(listing: &Value, agent_id: &str, pid: Option<u32>) -> usize {
    entries_of(listing, agent_id)
        .filter(|a| pid.is_none_or(|pid| a["metadata"]["pid"] == pid))
        .map(|a| a["connections"].as_array().map_or(0, Vec::len))
        .sum()
}

/// Requests in flight over every live connection of `agent_id`.
pub fn in_flight_of(listing: &Value, agent_id: &str) -> u64 {
    entries_of(listing, agent_id)
        .flat_map(|a| a["connections"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["in_flight"].as_u64())
        .sum()
}

fn entries_of<'a>(listing: &'a Value, agent_id: &'a str) -> impl Iterator<Item = &'a Value> {
    listing["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |a| a["agent_id"] == agent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_connections_per_agent_and_process() {
        let agents = serde_json::json!({"agents": [
            {"agent_id": "waf-a", "metadata": {"pid": 7}, "connections": [{}, {}]},
            {"agent_id": "waf-a", "metadata": {"pid": 8}, "connections": [{}]},
            {"agent_id": "waf-b", "metadata": {"pid": 9}, "connections": [{}]},
        ]});
        assert_eq!(connections_of(&agents, "waf-a", None), 3);
        assert_eq!(connections_of(&agents, "waf-a", Some(7)), 2);
        assert_eq!(connections_of(&agents, "waf-a", Some(9)), 0);
        assert_eq!(connections_of(&agents, "nobody", None), 0);
    }

    #[test]
    fn sums_requests_in_flight() {
        let agents = serde_json::json!({"agents": [
            {"agent_id": "waf-a", "connections": [{"in_flight": 2}, {"in_flight": 3}]},
            {"agent_id": "waf-b", "connections": [{"in_flight": 7}]},
        ]});
        assert_eq!(in_flight_of(&agents, "waf-a"), 5);
        assert_eq!(in_flight_of(&agents, "nobody"), 0);
    }
}
