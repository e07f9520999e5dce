"""Dialing ``tls:`` with the ``ssl`` module against the real proxy's mutual-TLS listener, with
throw-away certificates made by the ``openssl`` command for this test."""

import subprocess

import pytest

from conftest import eventually, route_to


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(directory, name, subject, extensions):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    (directory / f"{name}.ext").write_text(extensions)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
            cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=sentinel-test-ca", "-days", "1",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=directory)
    issue(directory, "server", "/CN=localhost",
          "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    issue(directory, "client", "/CN=probe-tls-1",
          "subjectAltName=DNS:probe-tls-1\nextendedKeyUsage=clientAuth\n")
    return directory


def test_mutual_tls_registration_and_decisions(start_sentinel, start_agent, pki):
    proxy = start_sentinel(route_to("probe", "probe-*"), extra=f"""    tls {{
        cert-file "{pki / 'server.crt'}"
        key-file "{pki / 'server.key'}"
        client-ca-file "{pki / 'ca.crt'}"
    }}""")
    address = f"tls:127.0.0.1:{proxy.tcp[1]}"
    flags = ["--connections", "2", "--tls-ca", str(pki / "ca.crt"),
             "--tls-cert", str(pki / "client.crt"), "--tls-key", str(pki / "client.key")]
    agent = start_agent("probe_agent", address, "probe-tls-1", *flags)
    connections = proxy.wait_for_connections("probe-tls-1", 2, agent)
    assert {c["transport"] for c in connections} == {"tls"}
    assert proxy.get("/over-tls").upstream_saw("x-probe") == ["probe-tls-1"]

    # The certificate names probe-tls-1 only: another id with it is refused for good.
    impostor = start_agent("probe_agent", address, "probe-impostor", *flags)
    eventually("the auth_failed refusal", lambda: "refused for good: refused `auth_failed`" in impostor.log())
    assert impostor.running() and proxy.connections_of("probe-impostor") == []
