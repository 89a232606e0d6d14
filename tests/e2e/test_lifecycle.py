"""`sluice serve`: start-up, configuration precedence, clean shutdown and restart."""

import signal
import socket
import subprocess

from broker import Broker, free_port, sluice_bin


def test_sigterm_shuts_down_cleanly_and_marks_the_data_dir(tmp_path):
    b = Broker(tmp_path / "data").start()
    with socket.create_connection(("127.0.0.1", b.port), timeout=2):
        pass
    assert b.stop(signal.SIGTERM) == 0
    assert (tmp_path / "data" / ".sluice_clean_shutdown").exists()
    assert "shutdown complete" in b.log()
    # A clean restart consumes the marker and does not report a recovery.
    b2 = Broker(tmp_path / "data").start()
    assert not (tmp_path / "data" / ".sluice_clean_shutdown").exists()
    assert b2.stop(signal.SIGINT) == 0
    assert "no clean shutdown marker" not in b2.log()


def test_a_second_broker_on_the_same_data_dir_is_refused(tmp_path):
    b = Broker(tmp_path / "data").start()
    try:
        out = subprocess.run(
            [sluice_bin(), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
             str(tmp_path / "data")], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert "in use by another sluice process" in out.stderr
    finally:
        b.stop()


def test_precedence_defaults_file_env_flags(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('listen = "127.0.0.1:1111"\ndata_dir = "/from/file"\n[log]\nretention_ms = 7\n')
    env = {"SLUICE_DATA_DIR": "/from/env", "SLUICE_LOG_RETENTION_MS": "8", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sluice_bin(), "config", "--config", str(cfg), "--listen",
                          "127.0.0.1:2222"], capture_output=True, text=True, env=env, check=True)
    assert 'listen = "127.0.0.1:2222"' in out.stdout  # flag beats file
    assert 'data_dir = "/from/env"' in out.stdout  # env beats file
    assert "retention_ms = 8" in out.stdout


def test_bad_config_is_named_and_refused(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[log]\ncleanup_policy = "shred"\n')
    out = subprocess.run([sluice_bin(), "serve", "--config", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "cleanup.policy" in out.stderr and "shred" in out.stderr
    out = subprocess.run([sluice_bin(), "serve", "--listen", "nowhere"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0 and "nowhere" in out.stderr
