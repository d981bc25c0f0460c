//! The service: wires broker, ingest, pipeline and HTTP API together, and stops them in order.
//!
//! Why a [`start`] returning a handle as well as [`run`]: tests and benchmarks start a gateway
//! in-process on ephemeral ports (HTTP port 0, embedded broker port 0) and need the addresses
//! it got; the binary just runs until SIGINT/SIGTERM.
//!
//! Shutdown order (graceful): the pipeline gets [`Item::Stop`] and finishes the batch in flight
//! (sequence, acknowledge, receipts, checkpoint); then the MQTT client disconnects (its
//! last acknowledgements are flushed by the still-running poll task); then the HTTP server
//! stops. Messages that arrived after the stop are not acknowledged and the broker redelivers
//! them to the next run. The embedded broker (rumqttd) cannot be stopped and lives on until the
//! process exits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::broker::{BrokerError, start_embedded};
use crate::config::Config;
use crate::ingest::{BadUrl, Ingest, IngestConfig, parse_url};
use crate::keys::{KeyFileError, load_gateway_signer, trusted_operators};
use crate::pipeline::{Item, NoOutbox, Outbox, Pipeline, PipelineError, Shared};

/// The service could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A key file or trusted key is unusable.
    #[error("{0}")]
    Key(#[from] KeyFileError),
    /// The stores could not be opened, or the pipeline failed.
    #[error("pipeline: {0}")]
    Pipeline(#[from] PipelineError),
    /// The embedded broker did not start.
    #[error("{0}")]
    Broker(#[from] BrokerError),
    /// The broker URL is invalid.
    #[error("{0}")]
    Url(#[from] BadUrl),
    /// The HTTP listener could not be bound.
    #[error("HTTP listener on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A task of the service died.
    #[error("internal: {0}")]
    Internal(String),
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The broker the gateway consumes from (the embedded one's address if embedded).
    pub mqtt_addr: SocketAddr,
    /// Whether the broker is the embedded one.
    pub embedded_broker: bool,
    /// The gateway's checkpoint verifier key string (SPEC §5).
    pub gateway_key: String,
    /// The shared state (log, indexes, metrics) for in-process readers.
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServiceError>>,
}

impl Running {
    /// Asks the service to stop and waits until it has (the batch in flight finished).
    pub async fn shutdown(mut self) -> Result<(), ServiceError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until the service stops (on its own error, or after [`Running::shutdown`]).
    pub async fn wait(self) -> Result<(), ServiceError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServiceError::Internal(e.to_string())),
        }
    }
}

/// Starts the gateway of `config` (must be called inside a multi-threaded tokio runtime).
pub async fn start(config: Config) -> Result<Running, ServiceError> {
    let signer = load_gateway_signer(&config.gateway_key_path(), &config.origin)?;
    let operators = trusted_operators(&config.keys.operators)?;
    if operators.is_empty() {
        tracing::warn!("no trusted operator keys configured: no device can be registered");
    }
    let pipeline = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Pipeline::open(&config, signer, operators))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
    };
    let shared = pipeline.shared();
    let gateway_key = shared.gateway_key.to_string();

    let (mqtt_addr, embedded, host) = match &config.mqtt.url {
        Some(url) => {
            let (host, port) = parse_url(url)?;
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
            (addr, false, host)
        }
        None => {
            let port = config.mqtt.embedded_port;
            let inflight = config.mqtt.inflight;
            let broker = tokio::task::spawn_blocking(move || start_embedded(port, inflight))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??;
            if broker.port_was_taken {
                println!(
                    "prov: port {port} is taken (another broker?); embedded MQTT broker listens on {} instead",
                    broker.addr
                );
            }
            (broker.addr, true, broker.addr.ip().to_string())
        }
    };

    let (tx, rx) = std::sync::mpsc::channel::<Item>();
    let ingest_config = IngestConfig {
        host,
        port: mqtt_addr.port(),
        client_id: config.mqtt.client_id.clone(),
        shared_group: config.mqtt.shared_group.clone(),
        inflight: config.mqtt.inflight,
        keep_alive: Duration::from_secs(config.mqtt.keep_alive_s.max(5)),
    };
    let (ingest, outbox) = Ingest::start(&ingest_config, tx.clone(), Arc::clone(&shared));

    let (done_tx, done_rx) = oneshot::channel::<Result<(), PipelineError>>();
    std::thread::Builder::new()
        .name(String::from("prov-pipeline"))
        .spawn(move || {
            let outbox: &dyn Outbox = &outbox;
            let result = pipeline.run(&rx, outbox);
            if let Err(e) = &result {
                tracing::error!("pipeline stopped: {e}");
            }
            let _ = done_tx.send(result);
        })
        .map_err(|e| ServiceError::Internal(e.to_string()))?;

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| ServiceError::Http {
            addr: config.http.listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| ServiceError::Http {
        addr: config.http.listen,
        source,
    })?;
    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let resolver = crate::resolver::Resolver::open(&config, http_addr)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let tokens = Arc::new(crate::auth::Tokens::open(&config.data_dir));
    let routes = crate::http::routes(Arc::clone(&shared), tx.clone(), Arc::new(resolver), tokens);
    let http_task = tokio::spawn(
        warp::serve(routes)
            .incoming(listener)
            .graceful(async move {
                let _ = http_stop_rx.await;
            })
            .run(),
    );

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut done_rx = done_rx;
        let pipeline_result = tokio::select! {
            _ = stop_rx => {
                tracing::info!("stopping: finishing the batch in flight");
                let _ = tx.send(Item::Stop);
                done_rx.await.unwrap_or(Ok(()))
            }
            r = &mut done_rx => r.unwrap_or(Ok(())),
        };
        drop(tx);
        ingest.stop(Duration::from_secs(3)).await;
        let _ = http_stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(3), http_task).await;
        pipeline_result.map_err(ServiceError::from)
    });
    tracing::info!(%http_addr, %mqtt_addr, embedded, %gateway_key, "gateway running");
    Ok(Running {
        http_addr,
        mqtt_addr,
        embedded_broker: embedded,
        gateway_key,
        shared,
        stop: Some(stop_tx),
        task,
    })
}

/// Runs the gateway until `shutdown` completes (then stops gracefully) or it fails.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
    let running = start(config).await?;
    println!(
        "prov gateway: http={} mqtt={}{} key={}",
        running.http_addr,
        running.mqtt_addr,
        if running.embedded_broker {
            " (embedded)"
        } else {
            ""
        },
        running.gateway_key
    );
    let Running { stop, task, .. } = running;
    let mut task = task;
    tokio::select! {
        () = shutdown => {
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            task.await.map_err(|e| ServiceError::Internal(e.to_string()))?
        }
        r = &mut task => r.map_err(|e| ServiceError::Internal(e.to_string()))?,
    }
}

/// Opens the stores without any network (for tools): the pipeline with an outbox that drops
/// acknowledgements.
pub fn open_offline(config: &Config) -> Result<(Pipeline, NoOutbox), ServiceError> {
    let signer = load_gateway_signer(&config.gateway_key_path(), &config.origin)?;
    let operators = trusted_operators(&config.keys.operators)?;
    Ok((Pipeline::open(config, signer, operators)?, NoOutbox))
}
