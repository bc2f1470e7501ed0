# Sourced by ./test: the real mail servers the integration tests start on 127.0.0.1 (Dovecot for IMAP,
# Postfix delivering to our LMTP server) and swaks, a plain SMTP client the sandbox tests use.
needed=()
command -v dovecot >/dev/null 2>&1 || needed+=(dovecot-imapd)
command -v doveadm >/dev/null 2>&1 || needed+=(dovecot-core)
command -v openssl >/dev/null 2>&1 || needed+=(openssl)
command -v postfix >/dev/null 2>&1 || needed+=(postfix)
command -v swaks >/dev/null 2>&1 || needed+=(swaks)
if [ "${#needed[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "The tests need the Debian packages: ${needed[*]}. Install them as root:" >&2
        echo "    sudo apt-get install -y ${needed[*]}" >&2
        exit 1
    fi
    echo "Installing Debian packages for the tests: ${needed[*]}"
    apt-get update -qq
    # A private Postfix instance is configured by the tests; the system one stays unconfigured.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # The package scripts try to start a system-wide Dovecot; the tests start their own private instance.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi
