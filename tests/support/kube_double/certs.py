"""CA, serving certificate and client certificate like the ones k3s generates (ECDSA P-256)."""
import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                           serialization.NoEncryption())


def _pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def _name(cn, org=None):
    attrs = []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(subject, issuer, pub, days):
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=days)))


def _san(name):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def generate(state_dir, extra_sans=()):
    """Writes ca.crt, server.crt/key, client-admin.crt/key (reused if present). Returns the paths.
    `extra_sans`: more names or IP addresses for the serving certificate (k3s's --tls-san and
    node IP), e.g. the lab server's address so the controller can verify it."""
    p = lambda n: os.path.join(state_dir, n)
    names = ["ca.crt", "ca.key", "server.crt", "server.key", "client-admin.crt", "client-admin.key"]
    if all(os.path.exists(p(n)) for n in names):
        return {n: p(n) for n in names}
    ca_key = _key()
    ca_name = _name("k3s-server-ca@%d" % int(datetime.datetime.now().timestamp()))
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), 3650)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, org, server):
        k = _key()
        b = (_builder(_name(cn, org), ca_name, k.public_key(), 365)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"), x509.DNSName("kubernetes.default.svc"),
                x509.DNSName("kubernetes.default.svc.cluster.local"), x509.DNSName("localhost"),
                x509.DNSName("lab-server"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1")),
                x509.IPAddress(ipaddress.ip_address("10.43.0.1"))] + [_san(n) for n in extra_sans]),
                critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    sk, sc = leaf("k3s", "k3s", True)
    ck, cc = leaf("system:admin", "system:masters", False)
    files = {"ca.crt": _pem_cert(ca), "ca.key": _pem_key(ca_key), "server.crt": _pem_cert(sc) + _pem_cert(ca),
             "server.key": _pem_key(sk), "client-admin.crt": _pem_cert(cc), "client-admin.key": _pem_key(ck)}
    for n, data in files.items():
        fd = os.open(p(n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return {n: p(n) for n in names}
