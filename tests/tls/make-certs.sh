#!/bin/sh
# SPDX-License-Identifier: MIT
# Generates the TLS tests' throw-away PKI into DIR (P-256 keys): never
# committed, made fresh by every test run and removed after it.
#
#   ca.pem ca.key            the test CA
#   server.pem server.key    CN=localhost, SAN localhost, 127.0.0.1, ::1
#   server2.pem server2.key  the same names, CN=localhost-2 (for reload)
#   client.pem client.key    CN=test-client (mutual TLS)
#   expired.pem expired.key  server names, expired yesterday
#   wrongname.pem .key       SAN other.invalid only
#   self.pem self.key        self-signed, server names
#   other-ca.pem             a second CA (trusted by nobody here)
#   foreign.pem foreign.key  server names, issued by other-ca
set -eu
dir=$1
cd "$dir"
names="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

ca() { # name cn
    key "$1"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -subj "/CN=$2" -days 2 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign 2>/dev/null
}

leaf() { # name cn san ca days
    key "$1"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial \
        -days "$5" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca test-ca
ca other-ca other-test-ca
leaf server localhost "$names" ca 2
leaf server2 localhost-2 "$names" ca 2
leaf client test-client "extendedKeyUsage=clientAuth" ca 2
leaf expired localhost "$names" ca -1
leaf wrongname other.invalid "subjectAltName=DNS:other.invalid" ca 2
leaf foreign localhost "$names" other-ca 2
key self
openssl req -x509 -new -key self.key -out self.pem -subj /CN=localhost -days 2 \
    -addext "$names" 2>/dev/null
