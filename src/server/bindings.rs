//! Registrations between the SIP core and the store: rows read back at
//! startup (so phones stay reachable across a restart), every change the
//! core reports written, in order, by one task, and the phones other
//! nodes sharing the store registered through a proxy, read every
//! [`ELSEWHERE_EVERY`] so that a caller here can be answered by them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip::transport::{Flow, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::Store;
use crate::store::agents::BindingRow;
use crate::ua::AgentRef;
use crate::ua::registrar::Binding;

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A binding as a row held by `node`.
pub fn to_row(agent: &AgentRef, b: &Binding, node: &str) -> BindingRow {
    BindingRow {
        tenant: agent.tenant_id.to_string(),
        extension: agent.extension.clone(),
        contact: b.contact.clone(),
        transport: b.flow.transport.to_string(),
        local_addr: b.flow.local.to_string(),
        remote_addr: b.flow.remote.to_string(),
        expires_ms: ms(b.expires),
        call_id: b.call_id.clone(),
        cseq: i64::from(b.cseq),
        path: b.path.join("\n"),
        node: node.to_owned(),
    }
}

/// A stored row back as a binding, if its tenant still exists and its
/// addresses parse. A stream flow's connection did not survive the
/// restart: the phone reconnects when it next registers.
pub fn from_row(row: &BindingRow, config: &Config) -> Option<(AgentRef, Binding)> {
    let tenant = config.tenants.iter().position(|t| t.id == row.tenant)?;
    let transport = match row.transport.to_ascii_uppercase().as_str() {
        "UDP" => Transport::Udp,
        "TCP" => Transport::Tcp,
        "TLS" => Transport::Tls,
        _ => return None,
    };
    let local: SocketAddr = row.local_addr.parse().ok()?;
    let remote: SocketAddr = row.remote_addr.parse().ok()?;
    let agent = AgentRef {
        tenant,
        tenant_id: Arc::from(row.tenant.as_str()),
        extension: row.extension.clone(),
    };
    let binding = Binding {
        contact: row.contact.clone(),
        flow: Flow {
            transport,
            local,
            remote,
            conn: None,
        },
        expires: SystemTime::UNIX_EPOCH + Duration::from_millis(row.expires_ms.max(0) as u64),
        call_id: row.call_id.clone(),
        cseq: u32::try_from(row.cseq).unwrap_or(0),
        path: row
            .path
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    Some((agent, binding))
}

/// Writes the changes in the order the core made them: whatever queued up
/// meanwhile goes in one transaction, the latest list per agent.
pub fn writer(store: Store, node: String) -> mpsc::UnboundedSender<(AgentRef, Vec<Binding>)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(AgentRef, Vec<Binding>)>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch: Vec<(AgentRef, Vec<Binding>)> = vec![first];
            while batch.len() < 1000 {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // The latest list of each agent, in first-seen order.
            let mut latest: Vec<(String, String, Vec<BindingRow>)> = Vec::new();
            for (agent, list) in &batch {
                let rows: Vec<BindingRow> = list.iter().map(|b| to_row(agent, b, &node)).collect();
                match latest
                    .iter_mut()
                    .find(|(t, e, _)| **t == *agent.tenant_id && *e == agent.extension)
                {
                    Some(slot) => slot.2 = rows,
                    None => {
                        latest.push((agent.tenant_id.to_string(), agent.extension.clone(), rows))
                    }
                }
            }
            if let Err(e) = store.replace_many_bindings(&node, &latest).await {
                tracing::error!(agents = latest.len(), error = %e, "registrations not stored");
            }
        }
    });
    tx
}

/// How often the other nodes' bindings are read from the store.
pub const ELSEWHERE_EVERY: Duration = Duration::from_secs(2);

/// Phones registered at other nodes that this node can ring, by agent.
pub type Elsewhere = HashMap<AgentRef, Vec<Binding>>;

/// Of the stored rows, those of other nodes this node can reach: the
/// REGISTER came through a proxy (it has a Path, RFC 3327) over UDP. The
/// call goes to the address that REGISTER came from (the proxy, never an
/// address named in a header), from our first UDP listener of its
/// family, with the Path as its Route; the proxy holds the phone's flow.
/// A phone that registered straight at another node (no Path) is
/// reachable only through that node's flow (its NAT binding, its TCP
/// connection); over TCP or TLS the proxy's connection is the other
/// node's, so those rows are left to it too.
pub fn elsewhere(
    rows: &[BindingRow],
    node: &str,
    config: &Config,
    udp_locals: &[SocketAddr],
) -> Elsewhere {
    let mut out = Elsewhere::new();
    for row in rows {
        if row.node == node || row.path.trim().is_empty() {
            continue;
        }
        let Some((agent, mut b)) = from_row(row, config) else {
            continue;
        };
        if b.flow.transport != Transport::Udp {
            continue;
        }
        let Some(local) = udp_locals
            .iter()
            .find(|l| l.is_ipv4() == b.flow.remote.is_ipv4())
        else {
            continue;
        };
        b.flow.local = *local;
        out.entry(agent).or_default().push(b);
    }
    out
}

/// Reads the other nodes' reachable bindings ([`elsewhere`]) every
/// [`ELSEWHERE_EVERY`] (the first at once) and sends each new set.
pub fn watch_elsewhere(
    store: Store,
    node: String,
    config: Config,
    udp_locals: Vec<SocketAddr>,
    stop: CancellationToken,
) -> mpsc::Receiver<Elsewhere> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ELSEWHERE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Elsewhere> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let rows = match store.bindings(None, ms(SystemTime::now())).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "other nodes' registrations not read");
                    continue;
                }
            };
            let now = elsewhere(&rows, &node, &config, &udp_locals);
            // Expiry times move with every re-REGISTER: a new set is sent
            // whenever anything changed.
            if last.as_ref() != Some(&now) {
                if tx.send(now.clone()).await.is_err() {
                    return;
                }
                last = Some(now);
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: &str, transport: &str, remote: &str, path: &str) -> BindingRow {
        BindingRow {
            tenant: "demo".into(),
            extension: "1001".into(),
            contact: format!("<sip:1001@10.0.0.5:5062;node={node}>"),
            transport: transport.into(),
            local_addr: "192.0.2.1:5060".into(),
            remote_addr: remote.into(),
            expires_ms: ms(SystemTime::now()) + 60_000,
            call_id: "c".into(),
            cseq: 1,
            path: path.into(),
            node: node.into(),
        }
    }

    #[test]
    fn only_other_nodes_phones_registered_through_a_proxy_over_udp_are_rung_from_here() {
        let config = Config::parse(crate::config::DEFAULT_TOML, "default").expect("config");
        let locals: Vec<SocketAddr> = vec![
            "[::1]:5060".parse().expect("addr"),
            "127.0.0.1:5060".parse().expect("addr"),
        ];
        let path = "<sip:127.0.0.1:5070;lr;received=sip:10.0.0.5:5062>";
        let rows = vec![
            row("b", "UDP", "127.0.0.1:5070", path),
            // This node's own: its registrar has it.
            row("a", "UDP", "127.0.0.1:5070", path),
            // Straight at node b, no proxy: only b's flow reaches it.
            row("b", "UDP", "198.51.100.7:5062", ""),
            // Through a proxy, but over b's TCP connection.
            row("b", "TCP", "127.0.0.1:5070", path),
            // No UDP listener here of its family.
            row("c", "UDP", "[2001:db8::1]:5070", path),
            // A tenant this node does not have.
            BindingRow {
                tenant: "gone".into(),
                ..row("b", "UDP", "127.0.0.1:5070", path)
            },
        ];
        let mut locals_v4 = locals.clone();
        locals_v4.retain(|l| l.is_ipv4());
        let got = elsewhere(&rows, "a", &config, &locals_v4);
        assert_eq!(got.len(), 1, "{got:?}");
        let (agent, phones) = got.iter().next().expect("one agent");
        assert_eq!(
            (&*agent.tenant_id, agent.extension.as_str()),
            ("demo", "1001")
        );
        assert_eq!(phones.len(), 1, "{phones:?}");
        let b = &phones[0];
        assert!(b.contact.contains("node=b"), "{}", b.contact);
        // Sent to the proxy the REGISTER came from, from our own socket
        // of its family, routed by the Path.
        assert_eq!(b.flow.remote, "127.0.0.1:5070".parse().expect("addr"));
        assert_eq!(b.flow.local, "127.0.0.1:5060".parse().expect("addr"));
        assert_eq!(b.path, vec![path.to_owned()]);
        // With an IPv6 listener too, the IPv6 proxy's row is taken, from it.
        let got = elsewhere(&rows, "a", &config, &locals);
        let phones = &got.values().next().expect("agent");
        assert_eq!(phones.len(), 2, "{phones:?}");
        assert_eq!(phones[1].flow.local, locals[0]);
    }
}
