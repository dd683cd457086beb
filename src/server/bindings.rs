//! Registrations between the SIP core and the store: rows read back at
//! startup (so phones stay reachable across a restart) and every change
//! the core reports written, in order, by one task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip::transport::{Flow, Transport};
use tokio::sync::mpsc;

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
