//! The supervisor on `sh` children: logs, exits, signals, restarts, the group on drop.

use std::time::Duration;

use super::*;

fn shell(name: &str, script: &str) -> ProcessSpec {
    ProcessSpec::new(name, "/bin/sh").args(["-c", script])
}

#[tokio::test]
async fn keeps_both_streams_and_reports_the_exit_with_its_log() {
    let mut child =
        Supervised::spawn(shell("talker", "echo out; echo err >&2; exit 3")).expect("spawn");
    let status = child
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");
    assert_eq!(status.code(), Some(3));
    child
        .wait_for_log("err", Duration::from_secs(5))
        .await
        .expect("stderr line");
    assert_eq!(child.log().text(Stream::Stdout), "out");
    let error = child.check_running().expect_err("exited").to_string();
    assert!(error.contains("talker") && error.contains("err"), "{error}");
}

#[tokio::test]
async fn a_log_wait_fails_early_when_the_process_exits() {
    let mut child = Supervised::spawn(shell("quitter", "echo bye")).expect("spawn");
    let error = child
        .wait_for_log("never said", Duration::from_secs(30))
        .await
        .expect_err("exited");
    assert!(matches!(error, ProcessError::Exited { .. }), "{error}");
}

#[tokio::test]
async fn terminate_pause_resume_and_respawn() {
    let dir = tempfile::tempdir().expect("dir");
    let spec = shell(
        "sleeper",
        "echo started; trap 'exit 0' TERM; while :; do sleep 0.05; done",
    )
    .log_file(dir.path().join("sleeper.log"));
    let mut child = Supervised::spawn(spec).expect("spawn");
    child
        .wait_for_log("started", Duration::from_secs(10))
        .await
        .expect("started");
    child.pause().await.expect("paused");
    child.resume().expect("resumed");
    let (_, status) = child
        .terminate(Duration::from_secs(10))
        .await
        .expect("terminated");
    assert!(status.success());
    assert!(
        child.signal(libc::SIGTERM).is_err(),
        "no signal to a reaped pid"
    );
    child.respawn().expect("respawn");
    child.check_running().expect("running again");
    let log = child.log().clone();
    crate::wait::eventually("the second start line", Duration::from_secs(10), || {
        std::future::ready(log.text(Stream::Stdout).matches("started").count() == 2)
    })
    .await;
    child.kill().await.expect("killed");
    let file = std::fs::read_to_string(dir.path().join("sleeper.log")).expect("log file");
    assert_eq!(file.matches("started").count(), 2, "{file}");
}

#[tokio::test]
async fn dropping_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let child = Supervised::spawn(shell("parent", &script)).expect("spawn");
    crate::wait::wait_for_file(&pid_file, Duration::from_secs(10))
        .await
        .expect("pid file");
    crate::wait::eventually("the pid file to be written", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
        std::future::ready(text.trim().parse::<u32>().is_ok())
    })
    .await;
    let grandchild: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    drop(child);
    crate::wait::eventually("the grandchild to die", Duration::from_secs(10), || {
        // Signal 0 probes; a zombie is reaped by init shortly.
        let alive = unsafe { libc::kill(grandchild, 0) } == 0
            && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        std::future::ready(!alive)
    })
    .await;
}
