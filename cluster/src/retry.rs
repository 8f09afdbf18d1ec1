//! The one read-modify-write loop: re-read and try again while the API server answers that
//! the object changed under the write (a `resourceVersion` precondition or a `test` patch
//! operation failed).

use std::future::Future;

/// Runs `attempt` at most `attempts` times (at least once). An attempt answers
/// `Ok(Ok(value))` when it is done, `Ok(Err(conflict))` when its write hit a conflict and it
/// should run again on a fresh read, `Err` to stop. `Ok(Err(conflict))` from this function:
/// every attempt conflicted, the last one with `conflict` (the caller says what kept
/// changing). Write `|| async { … }` over shared references: each attempt reads afresh.
///
/// # Errors
///
/// The first `Err` an attempt returns.
pub async fn retry_on_conflict<T, C, E, F, Fut>(
    attempts: usize,
    mut attempt: F,
) -> Result<Result<T, C>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, C>, E>>,
{
    let mut left = attempts.max(1);
    loop {
        match attempt().await? {
            Ok(done) => return Ok(Ok(done)),
            Err(conflict) if left <= 1 => return Ok(Err(conflict)),
            Err(_) => left -= 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn retries_until_done_and_stops_on_errors() {
        let runs = Cell::new(0);
        let done: Result<Result<u32, u32>, ()> = retry_on_conflict(5, || async {
            runs.set(runs.get() + 1);
            Ok(if runs.get() == 3 {
                Ok(runs.get())
            } else {
                Err(runs.get())
            })
        })
        .await;
        assert_eq!(done, Ok(Ok(3)));
        assert_eq!(runs.get(), 3, "no attempt after the one that was done");

        runs.set(0);
        let gave_up: Result<Result<u32, u32>, ()> = retry_on_conflict(4, || async {
            runs.set(runs.get() + 1);
            Ok(Err(runs.get()))
        })
        .await;
        assert_eq!(gave_up, Ok(Err(4)), "the last conflict is answered");
        assert_eq!(runs.get(), 4, "every attempt conflicted");

        runs.set(0);
        let failed: Result<Result<u32, ()>, &str> = retry_on_conflict(4, || async {
            runs.set(runs.get() + 1);
            if runs.get() == 2 {
                Err("boom")
            } else {
                Ok(Err(()))
            }
        })
        .await;
        assert_eq!(failed, Err("boom"));
        assert_eq!(runs.get(), 2, "an error stops at once");

        runs.set(0);
        let once: Result<Result<u32, ()>, ()> = retry_on_conflict(0, || async {
            runs.set(runs.get() + 1);
            Ok(Err(()))
        })
        .await;
        assert_eq!(once, Ok(Err(())));
        assert_eq!(runs.get(), 1, "zero attempts still tries once");
    }
}
