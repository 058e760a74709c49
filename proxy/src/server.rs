//! The proxy as a whole: bound sockets, the current settings (swapped on reload), and the
//! lifecycle (serve, reload, drain). Settings come from [`crate::tls::server_config`],
//! [`crate::upstream::Pools`] and [`crate::upstream::route::Router`]; each listener has one
//! socket per worker thread (`crate::listen`), and each socket runs
//! [`crate::conn::accept_loop`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use keyward_config::{Config, ListenerMode};
use keyward_hsm::{Hsm, Session};
use rustls::server::ProducesTickets;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::conn::{accept_loop, Lifecycle, Limit, ListenerState};
use crate::error::Error;
use crate::listen;
use crate::metrics::metrics;
use crate::tls::server_config;
use crate::tls::tickets::{remote_ticketer, ticketer, ContextTicketer, NodeRole};
use crate::upstream::route::Router;
use crate::upstream::{HealthChecks, Pools};

/// Where the proxy's private keys are and how it signs with them.
#[derive(Clone, Debug)]
pub enum Keys {
    /// This process's HSM (embedded mode), used as `session`'s user (normally
    /// [`keyward_hsm::PROXY_USER`]); `role` says whether this process makes and rotates the
    /// session-ticket keys ([`NodeRole::Writer`]) or uses those another node made.
    Local {
        /// The HSM.
        hsm: Arc<Hsm>,
        /// Whose keys.
        session: Session,
        /// Ticket-key role.
        role: NodeRole,
    },
    /// HSM nodes over their API (`[hsm] mode = "remote"`, see [`crate::remote`]).
    Remote(Arc<crate::remote::Remote>),
}

/// Everything a configuration builds, replaced as a whole on reload.
struct State {
    /// One per socket, in configuration order.
    listeners: Vec<Arc<ListenerState>>,
    /// Stops the health checks when the state is dropped.
    _health: HealthChecks,
}

struct Shared {
    state: ArcSwap<State>,
    keys: Keys,
    ticketer: Arc<dyn ProducesTickets>,
    /// The configured addresses (a reload must keep them).
    addresses: Vec<SocketAddr>,
    /// The configured backlogs (set at `listen(2)`; a reload must keep them).
    backlogs: Vec<u32>,
    /// The `[hsm]` settings the process started with (the HSM or the remote nodes it uses;
    /// a reload must keep them).
    hsm: keyward_config::HsmConfig,
    /// The bound addresses: the `listener` label of metrics and logs.
    labels: Vec<String>,
    /// Per socket: (connections, handshakes), kept across reloads.
    limits: Vec<(Arc<Limit>, Arc<Limit>)>,
    /// The `{pool, server}` labels of `keyward_upstream_healthy` now (reloads only).
    upstream_labels: std::sync::Mutex<Vec<(String, String)>>,
}

/// Every `(pool, server URL)` pair of `config`.
fn upstream_labels(config: &Config) -> Vec<(String, String)> {
    config
        .upstreams
        .iter()
        .flat_map(|(pool, p)| p.servers.iter().map(|s| (pool.clone(), s.url.clone())))
        .collect()
}

/// A built proxy: sockets bound, certificates loaded, keys resolved in the HSM.
pub struct Proxy {
    /// Per listener, one socket per worker thread (`SO_REUSEPORT`).
    sockets: Vec<Vec<TcpListener>>,
    shared: Arc<Shared>,
    drain_timeout: Duration,
}

/// Reloads a running [`Proxy`] (from a SIGHUP handler, say).
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("listeners", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("listeners", &self.shared.addresses)
            .finish_non_exhaustive()
    }
}

/// Builds every listener's settings from `config` (reading certificate files, resolving HSM
/// keys, building pools) without touching sockets. `ticketer` is called last, once everything
/// else is known to be valid (a writer node may create ticket keys in the store then).
fn build_state(
    config: &Config,
    keys: &Keys,
    ticketer: impl FnOnce() -> Result<Arc<dyn ProducesTickets>, Error>,
    labels: &[String],
    limits: &[(Arc<Limit>, Arc<Limit>)],
) -> Result<(State, Arc<dyn ProducesTickets>), Error> {
    let pools = Arc::new(Pools::build(&config.upstreams)?);
    let mut prepared = Vec::new();
    for l in &config.listeners {
        let tls = match l.mode {
            ListenerMode::Redirect => None,
            _ => Some(server_config(l, &config.session_resumption, keys)?),
        };
        prepared.push((l, tls));
    }
    let ticketer = ticketer()?;
    let mut names: Vec<http::HeaderName> = config
        .listeners
        .iter()
        .filter_map(|l| l.client_auth.as_ref())
        .filter_map(|c| http::HeaderName::from_bytes(c.subject_header.as_bytes()).ok())
        .collect();
    names.push(http::HeaderName::from_static("x-client-cert-subject"));
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    let subject_headers = Arc::new(names);
    let mut listeners = Vec::new();
    for (i, (l, tls)) in prepared.into_iter().enumerate() {
        let tls = match tls {
            None => None,
            Some(mut c) => {
                c.ticketer = match &l.client_auth {
                    None => ticketer.clone(),
                    Some(auth) => {
                        // Tickets of this listener are bound to its client-auth policy.
                        let mut policy =
                            format!("client-auth required={}\n", auth.required).into_bytes();
                        policy.extend_from_slice(&std::fs::read(&auth.ca_file).unwrap_or_default());
                        ContextTicketer::bind(ticketer.clone(), &policy)
                    }
                };
                Some(Arc::new(c))
            }
        };
        let fallback = l.upstream.clone().or_else(|| {
            config
                .upstreams
                .contains_key("default")
                .then(|| "default".to_owned())
        });
        let tcp_pool = match l.mode {
            ListenerMode::Tcp => l.upstream.as_deref().and_then(|u| pools.get(u)),
            _ => None,
        };
        let label = labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| l.address.to_string());
        listeners.push(Arc::new(ListenerState {
            cfg: l.clone(),
            tls,
            router: Router::new(&config.routes, fallback),
            pools: pools.clone(),
            tcp_pool,
            connections: limits[i].0.clone(),
            handshakes: limits[i].1.clone(),
            resting: metrics()
                .connections_resting
                .with_label_values(&[label.as_str()]),
            label,
            access_log: config.log.access_log,
            subject_headers: subject_headers.clone(),
            sign_slots: match keys {
                Keys::Remote(remote) => Some(remote.slots()),
                Keys::Local { .. } => None,
            },
        }));
    }
    // Only now that nothing can fail: apply the (possibly changed) limits.
    for (l, (connections, handshakes)) in config.listeners.iter().zip(limits) {
        connections.resize(l.max_connections);
        handshakes.resize(l.max_concurrent_handshakes);
    }
    let health = pools.start_health_checks();
    Ok((
        State {
            listeners,
            _health: health,
        },
        ticketer,
    ))
}

impl Proxy {
    /// Reads every certificate file, resolves each key label in the HSM, checks that each
    /// certificate's public key is its HSM key's, builds the upstream pools and binds every
    /// listener: one socket per worker thread of the current runtime (`SO_REUSEPORT`), each
    /// with the listener's `backlog`. Session-ticket keys are HSM objects; `role` says whether
    /// this process makes and rotates them ([`NodeRole::Writer`]) or uses those another node
    /// made.
    ///
    /// Keys are used as `session`'s user (normally [`keyward_hsm::PROXY_USER`]).
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::CertificateFile`], [`Error::Key`], [`Error::KeyMismatch`], [`Error::Tls`],
    /// [`Error::Upstream`], [`Error::File`], [`Error::Tickets`], [`Error::Bind`]; the first
    /// one found, with nothing left bound.
    pub fn build(
        config: &Config,
        hsm: &Arc<Hsm>,
        session: &Session,
        role: NodeRole,
    ) -> Result<Proxy, Error> {
        Self::build_with(
            config,
            Keys::Local {
                hsm: hsm.clone(),
                session: session.clone(),
                role,
            },
        )
    }

    /// [`build`](Self::build) with the keys in this process's HSM or on remote HSM nodes.
    ///
    /// # Errors
    /// As [`build`](Self::build); [`Error::RemoteKey`] when the nodes cannot be asked.
    pub fn build_with(config: &Config, keys: Keys) -> Result<Proxy, Error> {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let somaxconn = listen::somaxconn();
        let mut sockets = Vec::new();
        for l in &config.listeners {
            let group = listen::bind(l.address, workers, l.backlog)
                .and_then(|group| {
                    group
                        .into_iter()
                        .map(TcpListener::from_std)
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|error| Error::Bind {
                    address: l.address,
                    error,
                })?;
            sockets.push(group);
        }
        let labels: Vec<String> = sockets
            .iter()
            .map(|g| {
                g[0].local_addr()
                    .map_or_else(|_| "?".into(), |a| a.to_string())
            })
            .collect();
        for ((l, group), label) in config.listeners.iter().zip(&sockets).zip(&labels) {
            let backlog = somaxconn.map_or(l.backlog, |max| l.backlog.min(max));
            if backlog < l.backlog {
                tracing::warn!(
                    listener = %label,
                    backlog = l.backlog,
                    somaxconn = backlog,
                    "the kernel caps the listen backlog at net.core.somaxconn; raise that sysctl to use the configured backlog"
                );
            }
            let m = metrics();
            m.listen_backlog
                .with_label_values(&[label.as_str()])
                .set(i64::from(backlog));
            m.listen_sockets
                .with_label_values(&[label.as_str()])
                .set(group.len() as i64);
        }
        let limits: Vec<(Arc<Limit>, Arc<Limit>)> = config
            .listeners
            .iter()
            .map(|l| {
                (
                    Limit::new(l.max_connections),
                    Limit::new(l.max_concurrent_handshakes),
                )
            })
            .collect();
        let (state, ticketer) = build_state(
            config,
            &keys,
            || match &keys {
                Keys::Local { hsm, session, role } => {
                    ticketer(hsm, session, &config.session_resumption, *role)
                }
                Keys::Remote(remote) => remote_ticketer(remote, &config.session_resumption),
            },
            &labels,
            &limits,
        )?;
        Ok(Proxy {
            sockets,
            shared: Arc::new(Shared {
                state: ArcSwap::from_pointee(state),
                keys,
                ticketer,
                addresses: config.listeners.iter().map(|l| l.address).collect(),
                backlogs: config.listeners.iter().map(|l| l.backlog).collect(),
                hsm: config.hsm.clone(),
                labels,
                limits,
                upstream_labels: std::sync::Mutex::new(upstream_labels(config)),
            }),
            drain_timeout: Duration::from_millis(config.lifecycle.drain_timeout_ms),
        })
    }

    /// The bound addresses, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|g| g.first()?.local_addr().ok())
            .collect()
    }

    /// A handle that reloads this proxy's settings while it runs.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then drains: stops accepting, lets in-flight
    /// requests finish (HTTP/1.1 connections close after their current response, HTTP/2 ones
    /// get GOAWAY) for up to `lifecycle.drain_timeout_ms`, and returns. Connections still
    /// open then are dropped with the runtime.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let (drain_tx, drain_rx) = watch::channel(false);
        let lifecycle = Lifecycle::new(drain_rx);
        let mut tasks = tokio::task::JoinSet::new();
        for (i, group) in self.sockets.into_iter().enumerate() {
            for socket in group {
                let shared = self.shared.clone();
                let state = move || shared.state.load().listeners[i].clone();
                tasks.spawn(accept_loop(socket, state, lifecycle.clone()));
            }
        }
        shutdown.await;
        let open = lifecycle.open_connections();
        tracing::info!(
            connections = open,
            deadline_ms = self.drain_timeout.as_millis() as u64,
            "draining: no new connections; waiting for in-flight requests"
        );
        let _ = drain_tx.send(true);
        // The accept loops end at once and close the listening sockets.
        while tasks.join_next().await.is_some() {}
        if lifecycle.wait_closed(self.drain_timeout).await {
            tracing::info!("drained: every connection closed");
        } else {
            tracing::warn!(
                connections = lifecycle.open_connections(),
                "drain deadline reached; closing the remaining connections"
            );
        }
    }
}

impl ProxyHandle {
    /// Applies `config`: certificates, TLS settings, routes, pools and limits of the existing
    /// listeners. Connections already open keep the settings they started with; new ones get
    /// the new settings. Session-ticket keys are kept, so tickets stay valid.
    ///
    /// # Errors
    /// Any error of [`Proxy::build`], or [`Error::Reload`] when the set of listener addresses,
    /// a backlog or the `[hsm]` settings changed (those need a restart). On error the running settings are kept
    /// unchanged.
    pub fn reload(&self, config: &Config) -> Result<(), Error> {
        let result = self.try_reload(config);
        metrics()
            .config_reloads
            .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
            .inc();
        result
    }

    fn try_reload(&self, config: &Config) -> Result<(), Error> {
        let addresses: Vec<SocketAddr> = config.listeners.iter().map(|l| l.address).collect();
        if addresses != self.shared.addresses {
            return Err(Error::Reload {
                reason: "the listener addresses changed; restart keyward to apply that".into(),
            });
        }
        if config.hsm != self.shared.hsm {
            return Err(Error::Reload {
                reason: "the [hsm] settings changed; restart keyward to apply that".into(),
            });
        }
        if config
            .listeners
            .iter()
            .map(|l| l.backlog)
            .ne(self.shared.backlogs.iter().copied())
        {
            return Err(Error::Reload {
                reason: "a listener's backlog changed; restart keyward to apply that".into(),
            });
        }
        // On a cluster store, a key another node made a moment ago may not have been announced
        // to this node yet.
        if let Keys::Local { hsm, .. } = &self.shared.keys {
            if let Err(e) = hsm.catch_up() {
                tracing::warn!(error = %e, "cannot catch up with the cluster store before the reload; using the keys known so far");
            }
        }
        let (state, _) = build_state(
            config,
            &self.shared.keys,
            || Ok(self.shared.ticketer.clone()),
            &self.shared.labels,
            &self.shared.limits,
        )?;
        self.shared.state.store(Arc::new(state));
        // Servers no longer configured leave the health gauge.
        let now = upstream_labels(config);
        let mut labels = self
            .shared
            .upstream_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (pool, server) in labels.iter().filter(|l| !now.contains(l)) {
            let _ = metrics()
                .upstream_healthy
                .remove_label_values(&[pool.as_str(), server.as_str()]);
        }
        *labels = now;
        Ok(())
    }
}
