//! The one read-modify-write loop: re-read and try again while the API server answers that
//! the object changed under the write (a `resourceVersion` precondition or a `test` patch
//! operation failed).

use std::future::Future;

/// Runs `attempt` at most `attempts` times. An attempt answers `Ok(Some(value))` when it is
/// done, `Ok(None)` when its write hit a conflict and it should run again on a fresh read,
/// `Err` to stop. `Ok(None)` from this function: every attempt conflicted (the caller says
/// what kept changing). Write `|| async move { … }` over shared references: each attempt
/// reads afresh.
///
/// # Errors
///
/// The first `Err` an attempt returns.
pub async fn retry_on_conflict<T, E, F, Fut>(
    attempts: usize,
    mut attempt: F,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    for _ in 0..attempts {
        if let Some(done) = attempt().await? {
            return Ok(Some(done));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn retries_until_done_and_stops_on_errors() {
        let runs = Cell::new(0);
        let done: Result<Option<u32>, ()> = retry_on_conflict(5, || async {
            runs.set(runs.get() + 1);
            Ok((runs.get() == 3).then_some(runs.get()))
        })
        .await;
        assert_eq!(done, Ok(Some(3)));
        assert_eq!(runs.get(), 3, "no attempt after the one that was done");

        runs.set(0);
        let gave_up: Result<Option<u32>, ()> = retry_on_conflict(4, || async {
            runs.set(runs.get() + 1);
            Ok(None)
        })
        .await;
        assert_eq!(gave_up, Ok(None));
        assert_eq!(runs.get(), 4, "every attempt conflicted");

        runs.set(0);
        let failed: Result<Option<u32>, &str> = retry_on_conflict(4, || async {
            runs.set(runs.get() + 1);
            if runs.get() == 2 {
                Err("boom")
            } else {
                Ok(None)
            }
        })
        .await;
        assert_eq!(failed, Err("boom"));
        assert_eq!(runs.get(), 2, "an error stops at once");
    }
}
