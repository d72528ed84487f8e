//! RFC 3161 timestamps of checkpoints: the request a signer sends a Time Stamping Authority,
//! the checks it makes of the answer, and the offline verification of a stored token against
//! the TSA certificates an auditor trusts.
//!
//! The message timestamped is a checkpoint's signed note (its exact bytes); its SHA-256 is the
//! message imprint. A token is accepted when:
//! - the response's status is `granted` (or `grantedWithMods`) and it holds a token;
//! - the token is CMS SignedData over a TSTInfo (RFC 5652, RFC 3161 §2.4.2) whose message
//!   imprint is the note's SHA-256, whose nonce is the request's and, when the request named a
//!   policy, whose policy is that one;
//! - its one SignerInfo's signed attributes hold the TSTInfo content type and its digest, and
//!   the ESS signing certificate (v1 or v2) names the certificate that signed;
//! - the signature over the signed attributes verifies with that certificate (RSA PKCS #1 v1.5,
//!   ECDSA P-256/P-384 or Ed25519, through ring), which carries the `timeStamping` extended key
//!   usage and chains, each signature checked, to a trusted certificate;
//! - the time of the token lies within every certificate's validity on that chain.
//!
//! The ASN.1 is RustCrypto's (`x509-tsp`, `cms`, `x509-cert`, `der`): nothing is encoded or
//! parsed by hand.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{Any, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use sha2::Digest as _;
use thiserror::Error;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectKeyIdentifier};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

/// The media type of a request (RFC 3161 §3.4).
pub const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";
/// The media type of a response.
pub const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Longest chain from the TSA's certificate to a trusted one.
const MAX_CHAIN: usize = 6;

/// Why a request cannot be made or a token is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TimestampError {
    /// The bytes are not the ASN.1 they should be.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// The decoder's words.
        detail: String,
    },
    /// The policy is not an object identifier.
    #[error("invalid TSA policy {0:?}: expected an object identifier such as 1.2.3.4.1")]
    Policy(String),
    /// The TSA refused the request.
    #[error("the TSA refused the request: status {0}")]
    Refused(String),
    /// The token does not say what was asked.
    #[error("the token does not match its request: {0}")]
    Mismatch(&'static str),
    /// The token's signature or its certificates do not hold.
    #[error("the token's signature does not verify: {0}")]
    Signature(String),
    /// No trusted certificate vouches for the TSA.
    #[error("the TSA is not trusted: {0}")]
    Untrusted(String),
    /// The token's time is outside a certificate's validity.
    #[error("the TSA certificate {subject} was not valid at the token's time {time}")]
    Expired {
        /// The certificate's subject.
        subject: String,
        /// The token's time.
        time: String,
    },
}

fn malformed(what: &'static str) -> impl FnOnce(der::Error) -> TimestampError {
    move |e| TimestampError::Malformed { what, detail: e.to_string() }
}

/// A TimeStampReq (DER) for `message`: its SHA-256 imprint, `nonce`, the policy when given, and
/// the TSA's certificate asked for (so that the token carries it).
pub fn request(message: &[u8], nonce: [u8; 8], policy: Option<&str>) -> Result<Vec<u8>, TimestampError> {
    let req_policy = policy.map(policy_oid).transpose()?;
    // A positive nonce in its shortest form: the top byte has its high bit clear and is not zero.
    let mut nonce = nonce;
    nonce[0] = (nonce[0] & 0x7f) | 0x01;
    let request = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: imprint(message)?,
        req_policy,
        nonce: Some(Int::new(&nonce).map_err(malformed("nonce"))?),
        cert_req: true,
        extensions: None,
    };
    request.to_der().map_err(malformed("request"))
}

/// A TSA policy as an object identifier (`1.2.3.4.1`).
pub fn policy_oid(policy: &str) -> Result<ObjectIdentifier, TimestampError> {
    ObjectIdentifier::new(policy).map_err(|_| TimestampError::Policy(policy.to_string()))
}

/// The SHA-256 message imprint of `message` (the algorithm with NULL parameters, as RFC 4055
/// and OpenSSL spell it).
fn imprint(message: &[u8]) -> Result<MessageImprint, TimestampError> {
    Ok(MessageImprint {
        hash_algorithm: x509_cert::spki::AlgorithmIdentifier {
            oid: SHA256,
            parameters: Some(Any::encode_from(&der::asn1::Null).map_err(malformed("NULL"))?),
        },
        hashed_message: OctetString::new(sha2::Sha256::digest(message).to_vec()).map_err(malformed("imprint"))?,
    })
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The time the TSA vouches for, Unix milliseconds (UTC).
    pub gen_time_ms: i64,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA's policy.
    pub policy: String,
    /// The subject of the certificate that signed.
    pub tsa: String,
}

/// A response read and matched with its request: the TSTInfo (and its DER, which the signature
/// covers), the one SignerInfo, and the certificates the token carries.
struct Parsed {
    tst: TstInfo,
    tst_der: Vec<u8>,
    signer_info: SignerInfo,
    certificates: Vec<Certificate>,
}

fn parse(request: &[u8], response: &[u8], message: &[u8]) -> Result<Parsed, TimestampError> {
    let request = TimeStampReq::from_der(request).map_err(malformed("request"))?;
    let response = TimeStampResp::from_der(response).map_err(malformed("response"))?;
    use cmpv2::status::PkiStatus;
    if !matches!(response.status.status, PkiStatus::Accepted | PkiStatus::GrantedWithMods) {
        return Err(TimestampError::Refused(format!("{:?}", response.status.status)));
    }
    let token: ContentInfo =
        response.time_stamp_token.ok_or(TimestampError::Mismatch("the response holds no token"))?;
    if token.content_type != SIGNED_DATA {
        return Err(TimestampError::Mismatch("the token is not CMS SignedData"));
    }
    let signed: SignedData = token.content.decode_as().map_err(malformed("SignedData"))?;
    if signed.encap_content_info.econtent_type != TST_INFO {
        return Err(TimestampError::Mismatch("the token's content is not a TSTInfo"));
    }
    let econtent =
        signed.encap_content_info.econtent.as_ref().ok_or(TimestampError::Mismatch("the token has no content"))?;
    let tst_der = econtent.decode_as::<OctetString>().map_err(malformed("TSTInfo octets"))?.into_bytes();
    let tst = TstInfo::from_der(&tst_der).map_err(malformed("TSTInfo"))?;
    let asked = imprint(message)?;
    if tst.message_imprint.hash_algorithm.oid != SHA256 || tst.message_imprint.hashed_message != asked.hashed_message {
        return Err(TimestampError::Mismatch("its message imprint is not the SHA-256 of this checkpoint"));
    }
    if request.message_imprint.hashed_message != asked.hashed_message {
        return Err(TimestampError::Mismatch("the request is for another message"));
    }
    if tst.nonce != request.nonce {
        return Err(TimestampError::Mismatch("its nonce is not the request's"));
    }
    if request.req_policy.is_some_and(|p| p != tst.policy) {
        return Err(TimestampError::Mismatch("its policy is not the one requested"));
    }
    let certificates = certificates(&signed);
    let signer_info = match <[SignerInfo; 1]>::try_from(signed.signer_infos.0.into_vec()) {
        Ok([one]) => one,
        Err(_) => return Err(TimestampError::Signature("a token has exactly one signer".into())),
    };
    Ok(Parsed { tst, tst_der, signer_info, certificates })
}

/// What a TSA's answer says, checked against the request and the message but not yet against
/// any trusted certificate: the checks a signer makes before storing a token.
pub fn check_response(request: &[u8], response: &[u8], message: &[u8]) -> Result<TokenInfo, TimestampError> {
    let parsed = parse(request, response, message)?;
    let signer = signer_certificate(&parsed, &[])?;
    Ok(info(&parsed.tst, &signer))
}

fn info(tst: &TstInfo, signer: &Certificate) -> TokenInfo {
    TokenInfo {
        gen_time_ms: millis(tst.gen_time),
        serial: hex::encode(tst.serial_number.as_bytes()),
        policy: tst.policy.to_string(),
        tsa: signer.tbs_certificate.subject.to_string(),
    }
}

fn millis(time: GeneralizedTime) -> i64 {
    i64::try_from(time.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
}

/// Verifies a stored token fully: `check_response`'s checks, then the CMS signature, the ESS
/// signing certificate, the TSA certificate's key usage, and its chain to one of `trusted`,
/// every certificate valid at the token's time.
pub fn verify_token(
    request: &[u8],
    response: &[u8],
    message: &[u8],
    trusted: &[Certificate],
) -> Result<TokenInfo, TimestampError> {
    let parsed = parse(request, response, message)?;
    let signer_info = &parsed.signer_info;
    let signer = signer_certificate(&parsed, trusted)?;
    check_signed_attributes(signer_info, &parsed.tst_der, &signer)?;
    let attributes = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TimestampError::Signature("no signed attributes".into()))?
        .to_der()
        .map_err(malformed("signed attributes"))?;
    let digest = signer_info.digest_alg.oid;
    verify_signature(
        &signer,
        &signer_info.signature_algorithm,
        Some(digest),
        &attributes,
        signer_info.signature.as_bytes(),
    )?;
    let usage = signer
        .tbs_certificate
        .get::<ExtendedKeyUsage>()
        .map_err(malformed("extended key usage"))?
        .is_some_and(|(_, usage)| usage.0.contains(&TIME_STAMPING));
    if !usage {
        return Err(TimestampError::Untrusted(format!(
            "{} is not a time-stamping certificate (no timeStamping extended key usage)",
            signer.tbs_certificate.subject
        )));
    }
    chain_to_trusted(&signer, &parsed.certificates, trusted, parsed.tst.gen_time)?;
    Ok(info(&parsed.tst, &signer))
}

fn certificates(signed: &SignedData) -> Vec<Certificate> {
    signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(cert) => Some(cert.clone()),
            cms::cert::CertificateChoices::Other(_) => None,
        })
        .collect()
}

/// The certificate the SignerInfo names, among the token's own certificates and the trusted
/// ones.
fn signer_certificate(parsed: &Parsed, trusted: &[Certificate]) -> Result<Certificate, TimestampError> {
    parsed
        .certificates
        .iter()
        .chain(trusted)
        .find(|cert| match &parsed.signer_info.sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => {
                cert.tbs_certificate.issuer == id.issuer && cert.tbs_certificate.serial_number == id.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                cert.tbs_certificate.get::<SubjectKeyIdentifier>().ok().flatten().is_some_and(|(_, own)| own.0 == ski.0)
            }
        })
        .cloned()
        .ok_or_else(|| TimestampError::Untrusted("the token names a signing certificate it does not carry".into()))
}

/// ESSCertIDv2 (RFC 5035): the hash algorithm defaults to SHA-256.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// SigningCertificateV2 (RFC 5035).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// ESSCertID (RFC 2634): a SHA-1 hash.
#[derive(Clone, Debug, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// SigningCertificate (RFC 2634).
#[derive(Clone, Debug, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

fn attribute(info: &SignerInfo, oid: ObjectIdentifier) -> Option<&SetOfVec<x509_cert::attr::AttributeValue>> {
    info.signed_attrs.as_ref()?.iter().find(|a| a.oid == oid).map(|a| &a.values)
}

fn single<'a>(
    values: Option<&'a SetOfVec<x509_cert::attr::AttributeValue>>,
    what: &'static str,
) -> Result<&'a Any, TimestampError> {
    match values.map(|v| v.as_slice()) {
        Some([value]) => Ok(value),
        _ => Err(TimestampError::Signature(format!("the signed attributes need exactly one {what}"))),
    }
}

fn check_signed_attributes(info: &SignerInfo, tst_der: &[u8], signer: &Certificate) -> Result<(), TimestampError> {
    let content_type: ObjectIdentifier =
        single(attribute(info, CONTENT_TYPE), "content type")?.decode_as().map_err(malformed("content type"))?;
    if content_type != TST_INFO {
        return Err(TimestampError::Signature("the signed content type is not TSTInfo".into()));
    }
    let digest: OctetString =
        single(attribute(info, MESSAGE_DIGEST), "message digest")?.decode_as().map_err(malformed("message digest"))?;
    if digest.as_bytes() != hash(info.digest_alg.oid, tst_der)?.as_slice() {
        return Err(TimestampError::Signature("the signed message digest is not the TSTInfo's".into()));
    }
    let cert_der = signer.to_der().map_err(malformed("certificate"))?;
    if let Some(values) = attribute(info, SIGNING_CERTIFICATE_V2) {
        let ess: SigningCertificateV2 =
            single(Some(values), "signing certificate")?.decode_as().map_err(malformed("signing certificate v2"))?;
        let first =
            ess.certs.first().ok_or_else(|| TimestampError::Signature("an empty signing certificate".into()))?;
        let algorithm = first.hash_algorithm.as_ref().map_or(SHA256, |a| a.oid);
        if first.cert_hash.as_bytes() != hash(algorithm, &cert_der)?.as_slice() {
            return Err(TimestampError::Signature(
                "the signing certificate attribute names another certificate".into(),
            ));
        }
    } else if let Some(values) = attribute(info, SIGNING_CERTIFICATE) {
        let ess: SigningCertificate =
            single(Some(values), "signing certificate")?.decode_as().map_err(malformed("signing certificate"))?;
        let first =
            ess.certs.first().ok_or_else(|| TimestampError::Signature("an empty signing certificate".into()))?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der);
        if first.cert_hash.as_bytes() != sha1.as_ref() {
            return Err(TimestampError::Signature(
                "the signing certificate attribute names another certificate".into(),
            ));
        }
    } else {
        return Err(TimestampError::Signature("no ESS signing certificate attribute (RFC 3161 §2.4.1)".into()));
    }
    Ok(())
}

fn hash(algorithm: ObjectIdentifier, bytes: &[u8]) -> Result<Vec<u8>, TimestampError> {
    Ok(match algorithm {
        SHA256 => sha2::Sha256::digest(bytes).to_vec(),
        SHA384 => sha2::Sha384::digest(bytes).to_vec(),
        SHA512 => sha2::Sha512::digest(bytes).to_vec(),
        other => return Err(TimestampError::Signature(format!("unsupported digest algorithm {other}"))),
    })
}

/// Verifies `signature` over `message` with `cert`'s key. `digest` is the CMS digest algorithm,
/// which decides the hash when the signature algorithm names only the key type.
fn verify_signature(
    cert: &Certificate,
    algorithm: &AlgorithmIdentifierOwned,
    digest: Option<ObjectIdentifier>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), TimestampError> {
    use ring::signature as sig;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.raw_bytes();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let scheme: &dyn sig::VerificationAlgorithm = match (spki.algorithm.oid, algorithm.oid, digest, curve) {
        (RSA, RSA_SHA256, _, _) | (RSA, RSA, Some(SHA256), _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (RSA, RSA_SHA384, _, _) | (RSA, RSA, Some(SHA384), _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (RSA, RSA_SHA512, _, _) | (RSA, RSA, Some(SHA512), _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (EC_PUBLIC_KEY, ECDSA_SHA256, _, Some(P256)) => &sig::ECDSA_P256_SHA256_ASN1,
        (EC_PUBLIC_KEY, ECDSA_SHA384, _, Some(P256)) => &sig::ECDSA_P256_SHA384_ASN1,
        (EC_PUBLIC_KEY, ECDSA_SHA256, _, Some(P384)) => &sig::ECDSA_P384_SHA256_ASN1,
        (EC_PUBLIC_KEY, ECDSA_SHA384, _, Some(P384)) => &sig::ECDSA_P384_SHA384_ASN1,
        (ED25519, ED25519, _, _) => &sig::ED25519,
        (key, signature, _, _) => {
            return Err(TimestampError::Signature(format!(
                "unsupported signature algorithm {signature} for a {key} key"
            )));
        }
    };
    sig::UnparsedPublicKey::new(scheme, key)
        .verify(message, signature)
        .map_err(|_| TimestampError::Signature(format!("bad signature by {}", cert.tbs_certificate.subject)))
}

fn valid_at(cert: &Certificate, time: GeneralizedTime) -> Result<(), TimestampError> {
    let validity = &cert.tbs_certificate.validity;
    let at = time.to_unix_duration();
    if at < validity.not_before.to_unix_duration() || at > validity.not_after.to_unix_duration() {
        return Err(TimestampError::Expired {
            subject: cert.tbs_certificate.subject.to_string(),
            time: time.to_date_time().to_string(),
        });
    }
    Ok(())
}

/// Walks from the TSA's certificate to a trusted one, checking each signature and validity.
fn chain_to_trusted(
    signer: &Certificate,
    intermediates: &[Certificate],
    trusted: &[Certificate],
    time: GeneralizedTime,
) -> Result<(), TimestampError> {
    let mut current = signer.clone();
    for _ in 0..MAX_CHAIN {
        valid_at(&current, time)?;
        if trusted.contains(&current) {
            return Ok(());
        }
        let tbs = current.tbs_certificate.to_der().map_err(malformed("certificate"))?;
        let issued_by = |issuer: &&Certificate| {
            issuer.tbs_certificate.subject == current.tbs_certificate.issuer
                && verify_signature(issuer, &current.signature_algorithm, None, &tbs, current.signature.raw_bytes())
                    .is_ok()
        };
        if let Some(anchor) = trusted.iter().find(issued_by) {
            return valid_at(anchor, time);
        }
        let Some(next) = intermediates.iter().find(issued_by).filter(|c| *c != &current) else {
            return Err(TimestampError::Untrusted(format!(
                "no trusted certificate issued {} (issuer {})",
                current.tbs_certificate.subject, current.tbs_certificate.issuer
            )));
        };
        let ca = next.tbs_certificate.get::<BasicConstraints>().ok().flatten().is_some_and(|(_, b)| b.ca);
        if !ca {
            return Err(TimestampError::Untrusted(format!("{} is not a CA", next.tbs_certificate.subject)));
        }
        current = next.clone();
    }
    Err(TimestampError::Untrusted("the certificate chain is too long".into()))
}

/// Trusted TSA certificates from PEM text (one or more `CERTIFICATE` blocks).
pub fn trusted_from_pem(pem: &[u8]) -> Result<Vec<Certificate>, TimestampError> {
    let certs = Certificate::load_pem_chain(pem).map_err(malformed("trusted certificate PEM"))?;
    if certs.is_empty() {
        return Err(TimestampError::Malformed { what: "trusted certificate PEM", detail: "no certificate".into() });
    }
    Ok(certs)
}

/// The file stem of the timestamped checkpoint of `size` packs in an export:
/// `timestamp-NNNNNN.txt` (the note), `.tsq` (the DER request) and `.tsr` (the DER response),
/// the three files `openssl ts -verify -queryfile X.tsq -in X.tsr -CAfile CA.pem` reads.
pub fn file_stem(size: u64) -> String {
    format!("timestamp-{size:06}")
}

/// One timestamped checkpoint of an export, as read from its three files.
#[derive(Debug, Clone)]
pub struct StampFiles {
    /// The file stem, for messages.
    pub stem: String,
    /// The checkpoint note.
    pub note: String,
    /// The DER request.
    pub request: Vec<u8>,
    /// The DER response.
    pub response: Vec<u8>,
}

/// Reads every `timestamp-NNNNNN` triple of an export directory, in size order. A note or a
/// response without its two companions is an error: a token is checked whole or not at all.
pub fn stamps_from_dir(dir: &std::path::Path) -> std::io::Result<Vec<StampFiles>> {
    let mut stems: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let stem = name
                .strip_suffix(".txt")
                .or_else(|| name.strip_suffix(".tsq"))
                .or_else(|| name.strip_suffix(".tsr"))?;
            let digits = stem.strip_prefix("timestamp-")?;
            (digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| stem.to_string())
        })
        .collect();
    stems.sort();
    stems.dedup();
    stems
        .into_iter()
        .map(|stem| {
            let read = |ext: &str| {
                std::fs::read(dir.join(format!("{stem}.{ext}"))).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{stem}.{ext}: {e} (a timestamp is its .txt, .tsq and .tsr)"))
                })
            };
            let note = String::from_utf8(read("txt")?).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{stem}.txt is not UTF-8"))
            })?;
            Ok(StampFiles { note, request: read("tsq")?, response: read("tsr")?, stem })
        })
        .collect()
}
