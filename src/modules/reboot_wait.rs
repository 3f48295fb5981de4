//! The wait after a reboot command, shared by `reboot` (Linux) and `win_reboot` (Windows).
//!
//! Both modules read a boot id before rebooting (Linux `/proc/sys/kernel/random/boot_id`,
//! Windows `LastBootUpTime.ToFileTime()`), send the reboot command and drop the connection. Then
//! the same two-phase wait runs:
//!
//! 1. poll with backoff until a fresh connection answers AND the boot id differs from the one
//!    read before. Never "until the host went down": a host that reboots before the first poll
//!    (ansible#28134) is fine, and so is one that reboots twice. A transport error resets the
//!    connection (the next attempt opens a new one); an unchanged boot id does not.
//! 2. poll with backoff until the readiness test passes (the host may accept connections before
//!    it is ready to work: ansible.windows#27 never validated this).
//!
//! One deadline covers both phases: `post_reboot_delay + reboot_timeout` after the reboot
//! command. When it passes, the task fails with what the last attempt saw. The OS-specific part
//! is a [`RebootProbe`]: how to read the boot id, how to test readiness, how to reset.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{ModError, outcome};
use crate::connection::ConnError;

/// What one readiness test saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Done,
    /// The host answered but is not ready yet; the reason is kept for the timeout message.
    NotYet(String),
}

/// The OS-specific half of a reboot wait.
#[async_trait]
pub trait RebootProbe: Send + Sync {
    /// The current boot id, on the current connection (a new one after `reset`).
    /// `Ok(Err(why))`: the host answered but gave no usable boot id.
    async fn boot_id(&self) -> Result<Result<String, String>, ConnError>;
    /// Whether the host is ready for the next task.
    async fn ready(&self) -> Result<Check, ConnError>;
    /// Forgets the current connection; the next call opens a new one.
    async fn reset(&self);
}

/// How long to wait, in total and per attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSpec {
    pub reboot_timeout: Duration,
    pub post_reboot_delay: Duration,
    /// Bounds one boot-id attempt (`None`: only the deadline does).
    pub boot_attempt: Option<Duration>,
    /// Bounds one readiness test (`None`: only the deadline does).
    pub ready_attempt: Option<Duration>,
}

/// Why the wait ended without the host being back and ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// "the host to reboot" or "the post-reboot test command".
    pub what: &'static str,
    pub timeout: Duration,
    /// What the last attempt saw.
    pub last: String,
}

impl TimedOut {
    /// The task's failure: Ansible's message, plus what the last attempt saw.
    pub fn into_error(self) -> ModError {
        let mut r = outcome(true);
        r.insert("rebooted".into(), true.into());
        ModError::Failed {
            msg: format!(
                "Timed out waiting for {} (timeout={}): {}",
                self.what,
                fmt_secs(self.timeout),
                self.last
            ),
            result: r,
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

/// Backoff between polls: 0.5 s doubling up to 8 s, never past the deadline.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)))
}

/// What a finished wait found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Back {
    /// The new boot id.
    pub boot_id: String,
    /// Boot-id attempts made (1 = the first poll already saw the new boot).
    pub attempts: u32,
}

/// Waits until the host answers with a boot id other than `before`, then until it is ready.
/// `started` is when the reboot command was sent.
pub async fn wait_for_reboot(
    probe: &dyn RebootProbe,
    before: &str,
    spec: &WaitSpec,
    started: Instant,
) -> Result<Back, TimedOut> {
    if !spec.post_reboot_delay.is_zero() {
        tokio::time::sleep_until(started + spec.post_reboot_delay).await;
    }
    let deadline = started + spec.post_reboot_delay + spec.reboot_timeout;
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let boot_id = poll_until(
        probe,
        deadline,
        spec,
        "the host to reboot",
        spec.boot_attempt,
        || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(match probe.boot_id().await? {
                Ok(id) if id != before => Some(Ok(id)),
                Ok(_) => Some(Err(
                    "boot id unchanged: the host has not rebooted yet".to_string()
                )),
                Err(why) => Some(Err(why)),
            })
        },
    )
    .await?;
    poll_until(
        probe,
        deadline,
        spec,
        "the post-reboot test command",
        spec.ready_attempt,
        || async {
            Ok(Some(match probe.ready().await? {
                Check::Done => Ok(String::new()),
                Check::NotYet(why) => Err(why),
            }))
        },
    )
    .await?;
    Ok(Back {
        boot_id,
        attempts: attempts.into_inner(),
    })
}

/// Calls `attempt` until it answers `Ok(Some(Ok(v)))`, sleeping with backoff in between. A
/// transport error (or an attempt over its time) resets the connection first. Fails with what
/// the last attempt saw once `deadline` passes.
async fn poll_until<F, Fut>(
    probe: &dyn RebootProbe,
    deadline: Instant,
    spec: &WaitSpec,
    what: &'static str,
    per_attempt: Option<Duration>,
    attempt: F,
) -> Result<String, TimedOut>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Result<String, String>>, ConnError>>,
{
    let mut n = 0u32;
    let mut last = String::from("no attempt finished");
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what,
                timeout: spec.reboot_timeout,
                last,
            });
        }
        let limit = per_attempt.map_or(deadline - now, |a| a.min(deadline - now));
        let reset = match tokio::time::timeout(limit, attempt()).await {
            Ok(Ok(Some(Ok(v)))) => return Ok(v),
            Ok(Ok(Some(Err(why)))) => {
                last = why;
                false
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                last = e.message;
                true
            }
            Err(_) => {
                last = format!("no answer within {}s", fmt_secs(limit));
                true
            }
        };
        if reset {
            // A half-open or refused session: start over with a new one next time.
            probe.reset().await;
        }
        let now = Instant::now();
        if now >= deadline {
            continue;
        }
        tokio::time::sleep(backoff(n).min(deadline - now)).await;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A scripted host: each call pops the next answer (the last one repeats).
    struct Fake {
        boots: Mutex<Vec<Result<Result<String, String>, ConnError>>>,
        readies: Mutex<Vec<Result<Check, ConnError>>>,
        resets: Mutex<u32>,
        calls: Mutex<Vec<&'static str>>,
    }

    fn next<T: Clone>(v: &Mutex<Vec<T>>) -> T {
        let mut v = v.lock().unwrap();
        if v.len() > 1 {
            v.remove(0)
        } else {
            v[0].clone()
        }
    }

    #[async_trait]
    impl RebootProbe for Fake {
        async fn boot_id(&self) -> Result<Result<String, String>, ConnError> {
            self.calls.lock().unwrap().push("boot");
            next(&self.boots)
        }
        async fn ready(&self) -> Result<Check, ConnError> {
            self.calls.lock().unwrap().push("ready");
            next(&self.readies)
        }
        async fn reset(&self) {
            *self.resets.lock().unwrap() += 1;
        }
    }

    fn fake(
        boots: Vec<Result<Result<String, String>, ConnError>>,
        readies: Vec<Result<Check, ConnError>>,
    ) -> Fake {
        Fake {
            boots: Mutex::new(boots),
            readies: Mutex::new(readies),
            resets: Mutex::new(0),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn spec(timeout: u64) -> WaitSpec {
        WaitSpec {
            reboot_timeout: Duration::from_secs(timeout),
            post_reboot_delay: Duration::ZERO,
            boot_attempt: Some(Duration::from_secs(5)),
            ready_attempt: None,
        }
    }

    fn id(s: &str) -> Result<Result<String, String>, ConnError> {
        Ok(Ok(s.to_string()))
    }

    fn refused() -> Result<Result<String, String>, ConnError> {
        Err(ConnError::unreachable("connection refused"))
    }

    #[test]
    fn backoff_doubles_up_to_eight_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(40), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_back_before_the_first_poll_is_fine() {
        let f = fake(vec![id("B")], vec![Ok(Check::Done)]);
        let back = wait_for_reboot(&f, "A", &spec(60), Instant::now())
            .await
            .unwrap();
        assert_eq!(back.boot_id, "B");
        assert_eq!(back.attempts, 1);
        assert_eq!(*f.resets.lock().unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn down_then_up_resets_the_connection_after_each_error() {
        let f = fake(
            vec![id("A"), refused(), refused(), id("B")],
            vec![Ok(Check::Done)],
        );
        let t0 = Instant::now();
        let back = wait_for_reboot(&f, "A", &spec(60), t0).await.unwrap();
        assert_eq!(back.attempts, 4);
        assert_eq!(*f.resets.lock().unwrap(), 2, "reset after errors only");
        // 0.5 + 1 + 2 s of backoff before the fourth attempt.
        assert_eq!(t0.elapsed(), Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_reboot_during_the_readiness_test_is_waited_out() {
        let f = fake(
            vec![id("B")],
            vec![
                Err(ConnError::failed("connection reset")),
                Ok(Check::NotYet("LogonUI not up".into())),
                Ok(Check::Done),
            ],
        );
        let back = wait_for_reboot(&f, "A", &spec(60), Instant::now())
            .await
            .unwrap();
        assert_eq!(back.boot_id, "B");
        assert_eq!(
            *f.calls.lock().unwrap(),
            vec!["boot", "ready", "ready", "ready"]
        );
        assert_eq!(*f.resets.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_never_returns_times_out_at_the_limit_with_the_last_error() {
        let f = fake(vec![refused()], vec![Ok(Check::Done)]);
        let t0 = Instant::now();
        let e = wait_for_reboot(&f, "A", &spec(20), t0).await.unwrap_err();
        assert_eq!(t0.elapsed(), Duration::from_secs(20));
        assert_eq!(e.what, "the host to reboot");
        assert_eq!(e.last, "connection refused");
        let ModError::Failed { msg, result } = e.into_error() else {
            panic!()
        };
        assert_eq!(
            msg,
            "Timed out waiting for the host to reboot (timeout=20): connection refused"
        );
        assert_eq!(result["rebooted"], true);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_is_cut_and_the_connection_reset() {
        struct Hang;
        #[async_trait]
        impl RebootProbe for Hang {
            async fn boot_id(&self) -> Result<Result<String, String>, ConnError> {
                std::future::pending().await
            }
            async fn ready(&self) -> Result<Check, ConnError> {
                Ok(Check::Done)
            }
            async fn reset(&self) {}
        }
        let t0 = Instant::now();
        let e = wait_for_reboot(&Hang, "A", &spec(12), t0)
            .await
            .unwrap_err();
        assert_eq!(t0.elapsed(), Duration::from_secs(12));
        assert!(e.last.starts_with("no answer within"), "{}", e.last);
    }

    #[tokio::test(start_paused = true)]
    async fn post_reboot_delay_comes_first_and_extends_the_deadline() {
        let f = fake(vec![id("A")], vec![Ok(Check::Done)]);
        let mut s = spec(10);
        s.post_reboot_delay = Duration::from_secs(30);
        let t0 = Instant::now();
        let e = wait_for_reboot(&f, "A", &s, t0).await.unwrap_err();
        assert_eq!(t0.elapsed(), Duration::from_secs(40));
        assert!(e.last.contains("boot id unchanged"));
        assert_eq!(
            e.into_error_msg(),
            "Timed out waiting for the host to reboot (timeout=10): boot id unchanged: the host has not rebooted yet"
        );
    }

    impl TimedOut {
        fn into_error_msg(self) -> String {
            match self.into_error() {
                ModError::Failed { msg, .. } => msg,
                ModError::Conn(e) => e.message,
            }
        }
    }
}
