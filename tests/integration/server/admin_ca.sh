#!/usr/bin/env bash
# admin_ca.sh - administrators' client certificates from a configured
# admin-ca, over real TLS: a certificate whose CN names a credential acts
# with that credential's role (viewer: reads, writes refused 403 and
# audited); the same CN from the station CA, an unknown CN, a revoked
# credential's CN and a self-signed certificate are refused; a bearer, when
# sent, decides alone; an admin-ca certificate is not a station's.
. "$(dirname "$0")/../../lib.sh"
. "$(dirname "$0")/idprovd.inc"

pki=$T_TMP/pki
mkdir -p "$pki"
# ca NAME: a P-256 CA certificate and key in $pki.
ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
		-out "$pki/$1.pem" -subj "/CN=$1" -days 30 -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign 2>/dev/null
}
# leaf NAME CN CA: a client certificate for CN issued by CA.
leaf() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
		-out "$pki/$1.csr" -subj "/CN=$2" 2>/dev/null &&
		openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$3.pem" -CAkey "$pki/$3.key" -CAcreateserial \
			-days 30 -out "$pki/$1.pem" \
			-extfile <(printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n') 2>/dev/null
}
t_run "admin CA" ca admin-ca
t_run "station CA" ca station-ca
t_run "viewer certificate" leaf view ops-cert admin-ca
t_run "unknown-name certificate" leaf nobody nobody admin-ca
t_run "station certificate with the same CN" leaf st ops-cert station-ca
t_run "admin certificate named like a station" leaf adst station-01 admin-ca
t_run "self-signed certificate" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-nodes -keyout "$pki/self.key" -out "$pki/self.pem" -subj /CN=ops-cert -days 30

st=$T_TMP/state
t_run "server starts with admin-ca and station-ca" srv_start "$st" --admin-ca "$pki/admin-ca.pem" \
	--station-ca "$pki/station-ca.pem"
db=$st/idprov.db
adm() { "$IDP_BIN/idprov-admin" --server "$SRV_URL" --ca "$SRV_CA" "$@"; }
as() { local n=$1; shift; adm --cert "$pki/$n.pem" --key "$pki/$n.key" "$@"; }
t_run "credential ops-cert (viewer)" adm --token-file "$st/admin.token" credential add ops-cert \
	--role viewer --out "$T_TMP/unused.token"

t_run "certificate: whoami" as view --json whoami >"$T_TMP/who"
t_grep "certificate acts as its credential" '"name":"ops-cert","role":"viewer"' "$T_TMP/who"
t_run "certificate: a list" as view devices
code=$(as view station add s1 "$IDP_TOP/samples/manifests/sample-station-p256.pub" 2>"$T_TMP/w.err"; echo $?)
t_run "certificate viewer: write refused" [ "$code" = 1 ]
t_grep "certificate viewer: 403 read-only" '403 forbidden.*role viewer' "$T_TMP/w.err"
t_run "refusal audited with the certificate's name" [ "$(sqlite3 -readonly "$db" \
	"select count(*) from audit where event='admin.denied' and actor='ops-cert'")" -ge 1 ]

code=$(as st whoami 2>"$T_TMP/st.err"; echo $?)
t_run "station CA certificate with the same CN: refused" [ "$code" = 1 ]
t_grep "station certificate: 401" '401 unauthorized' "$T_TMP/st.err"
code=$(as nobody whoami 2>"$T_TMP/nb.err"; echo $?)
t_run "admin CA certificate naming no credential: refused" [ "$code" = 1 ]
code=$(as self whoami 2>/dev/null; echo $?)
t_run "self-signed certificate: refused" [ "$code" != 0 ]
code=$(IDPROV_ADMIN_TOKEN=wrong-bearer as view whoami 2>/dev/null; echo $?)
t_run "a wrong bearer beside a good certificate: refused" [ "$code" = 1 ]
t_run "an admin bearer beside the viewer certificate decides" \
	as view --token-file "$st/admin.token" whoami
# The other way round: an admin-ca certificate is no station's.
up() {
	srv_curl -o "$T_TMP/up.out" -w '%{http_code}' --cert "$pki/$1.pem" --key "$pki/$1.key" \
		-H 'Content-Type: application/vnd.idprov.manifest' --data-binary 'x' "$SRV_URL/v1/batches"
}
t_run "admin certificate as a station: 403" [ "$(up adst)" = 403 ]
t_grep "admin certificate as a station: not trusted" 'station: certificate not trusted' "$T_TMP/up.out"
code=$(up st)
t_run "station certificate: past authentication (a bad manifest, $code)" [ "$code" = 400 ]
t_run "revoke ops-cert" adm --token-file "$st/admin.token" credential revoke ops-cert
code=$(as view whoami 2>/dev/null; echo $?)
t_run "revoked: its certificate is refused" [ "$code" = 1 ]
t_run "server stops" srv_stop
t_done
