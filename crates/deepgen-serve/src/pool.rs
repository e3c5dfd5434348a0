//! Inference off the async runtime, through a bounded queue: at most `workers` calls run at once
//! on tokio's blocking threads, at most `queue` more wait for a worker, and any call beyond
//! those is refused at once with 503 and `Retry-After`. A call that waits or runs longer than
//! the timeout answers 504; its work, which cannot be cancelled mid-tensor, finishes in the
//! background and keeps its place in the bound until it does, so a flood of slow requests
//! cannot pile up work the queue did not admit.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;

#[derive(Clone)]
pub struct Pool {
    /// Admission: workers + queue permits; a call holds one from admission to its end.
    admitted: Arc<Semaphore>,
    /// Running: `workers` permits.
    running: Arc<Semaphore>,
    timeout: Duration,
}

impl Pool {
    pub fn new(workers: usize, queue: usize, timeout: Duration) -> Self {
        let workers = workers.max(1);
        Self {
            admitted: Arc::new(Semaphore::new(workers + queue)),
            running: Arc::new(Semaphore::new(workers)),
            timeout,
        }
    }

    /// Runs `f` on a blocking thread when a worker is free; 503 when the queue is full, 504
    /// after the timeout.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::busy("the inference queue is full; try again shortly", 1))?;
        let running = self.running.clone();
        let task = tokio::spawn(async move {
            let _admitted = admitted;
            let _running = running.acquire_owned().await.map_err(|_| closed())?;
            tokio::task::spawn_blocking(f).await.map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("inference failed: {e}"))
            })?
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("inference task failed: {e}"),
            )),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the request took longer than the {:.0} s request timeout (--timeout)",
                    self.timeout.as_secs_f64()
                ),
            )),
        }
    }

    /// Calls admitted and not yet finished (running or waiting).
    pub fn in_flight(&self, workers: usize, queue: usize) -> usize {
        workers.max(1) + queue - self.admitted.available_permits()
    }
}

fn closed() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the service is shutting down")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_503_with_retry_after_and_admits_again_once_free() {
        let pool = Pool::new(1, 1, Duration::from_secs(10));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
        let hold = |rx: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>| {
            move || -> Result<u32, ApiError> {
                let _ = rx.lock().map(|r| r.recv());
                Ok(1)
            }
        };
        let (p1, p2) = (pool.clone(), pool.clone());
        let a = tokio::spawn({
            let f = hold(go_rx.clone());
            async move { p1.run(f).await }
        });
        let b = tokio::spawn({
            let f = hold(go_rx.clone());
            async move { p2.run(f).await }
        });
        // Both admitted (one running, one queued): the third is refused at once.
        while pool.in_flight(1, 1) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let e = pool.run(|| Ok(3)).await.expect_err("refused");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
        go_tx.send(()).unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(a.await.unwrap().unwrap() + b.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| Ok(3)).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_call_past_the_timeout_answers_504() {
        let pool = Pool::new(1, 0, Duration::from_millis(50));
        let e = pool
            .run(|| {
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            })
            .await
            .expect_err("timed out");
        assert_eq!(e.status, StatusCode::GATEWAY_TIMEOUT);
        assert!(e.message.contains("timeout"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_panicking_call_is_a_500_and_the_pool_goes_on() {
        let pool = Pool::new(1, 0, Duration::from_secs(5));
        let e = pool.run(|| -> Result<(), ApiError> { panic!("boom") }).await.unwrap_err();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(pool.run(|| Ok(5)).await.unwrap(), 5);
    }
}
