//! `PsnClient`: bearer-authorized calls with the access token refreshed ahead of its expiry,
//! one refresh at a time, tokens kept in the token store.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::auth::{self, Tokens};
use super::config::PsnConfig;
use super::error::{PsnError, Result};
use super::http::{Http, HttpOptions, Request, Response};
use super::secret::Secret;
use super::token_store::{Guarded, StoredTokens, TokenStore};
use super::trace::Trace;

#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub http: HttpOptions,
    pub trace: Option<Trace>,
    /// Where tokens are kept; defaults to the token file in `config.config_dir` when that is set.
    pub token_store: Option<TokenStore>,
}

#[derive(Debug)]
pub struct PsnClient {
    config: PsnConfig,
    http: Http,
    store: Option<TokenStore>,
    tokens: Mutex<Option<Tokens>>,
    device_id: String,
    /// `PSN_NPSSO` from the configuration, taken out of it and used at most once.
    pending_npsso: std::sync::Mutex<Option<Secret>>,
}

impl PsnClient {
    /// Makes the client and loads stored tokens, if any. Sends nothing.
    pub fn new(mut config: PsnConfig, opts: ClientOptions) -> Result<Arc<Self>> {
        let pending_npsso = std::sync::Mutex::new(config.npsso.take());
        let store = opts
            .token_store
            .or_else(|| config.config_dir.as_deref().map(TokenStore::in_dir));
        let stored = match &store {
            Some(s) => s.load()?,
            None => None,
        };
        let tokens = stored.as_ref().map(Tokens::from_stored);
        // The device the stored tokens were signed in with, else this install's device id.
        let device_id = match stored.and_then(|s| s.device_id) {
            Some(id) => id,
            None => super::config::device_id(config.config_dir.as_deref())?,
        };
        let trace = opts.trace.or_else(|| {
            let path = config.trace_file.as_deref()?;
            match Trace::to_file(path) {
                Ok(trace) => {
                    log::info!("writing the redacted protocol trace to {}", path.display());
                    Some(trace)
                }
                Err(e) => {
                    log::warn!("cannot write the protocol trace to {}: {e}", path.display());
                    None
                }
            }
        });
        Ok(Arc::new(PsnClient {
            http: Http::new(&opts.http, trace)?,
            config,
            store,
            tokens: Mutex::new(tokens),
            device_id,
            pending_npsso,
        }))
    }

    pub fn config(&self) -> &PsnConfig {
        &self.config
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The stable per-install device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Our own account id (from the access JWT), when signed in.
    pub async fn account_id(&self) -> Option<String> {
        self.tokens
            .lock()
            .await
            .as_ref()
            .map(|t| t.account_id.clone())
    }

    pub async fn is_signed_in(&self) -> bool {
        self.tokens.lock().await.is_some()
    }

    /// NPSSO -> tokens, stored. The NPSSO is dropped when this returns.
    pub async fn sign_in_with_npsso(&self, npsso: Secret) -> Result<String> {
        let mut guard = self.tokens.lock().await;
        let t = auth::sign_in_with_npsso(&self.http, &self.config, npsso, &self.device_id).await?;
        self.save(&t)?;
        let id = t.account_id.clone();
        *guard = Some(t);
        Ok(id)
    }

    /// Signed in already (stored tokens), or signs in with the configured `PSN_NPSSO` (headless
    /// sign-in), which is then forgotten whatever the outcome. Returns our account id.
    pub async fn ensure_signed_in(&self) -> Result<String> {
        if let Some(id) = self.account_id().await {
            return Ok(id);
        }
        let npsso = self
            .pending_npsso
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match npsso {
            Some(n) => self.sign_in_with_npsso(n).await,
            None => Err(PsnError::NotSignedIn),
        }
    }

    /// Forgets the tokens here and on disk.
    pub async fn sign_out(&self) -> Result<()> {
        *self.tokens.lock().await = None;
        match &self.store {
            Some(s) => s.delete(),
            None => Ok(()),
        }
    }

    /// A valid access token, refreshed first when it is within its margin of expiry.
    pub async fn access_token(&self) -> Result<Secret> {
        let mut guard = self.tokens.lock().await;
        let t = guard.as_ref().ok_or(PsnError::NotSignedIn)?;
        if !t.needs_refresh(Instant::now()) {
            return Ok(t.access_token.clone());
        }
        self.refresh_locked(&mut guard).await
    }

    /// When the access token is due for its refresh; `None` when signed out.
    pub async fn access_refresh_at(&self) -> Option<Instant> {
        self.tokens.lock().await.as_ref().map(|t| t.refresh_at())
    }

    /// Refreshes now unless someone already replaced `stale` (after a 401).
    async fn refresh_after_401(&self, stale: &Secret) -> Result<Secret> {
        let mut guard = self.tokens.lock().await;
        let t = guard.as_ref().ok_or(PsnError::NotSignedIn)?;
        if &t.access_token != stale {
            return Ok(t.access_token.clone());
        }
        self.refresh_locked(&mut guard).await
    }

    async fn refresh_locked(&self, guard: &mut Option<Tokens>) -> Result<Secret> {
        let old = guard.as_ref().ok_or(PsnError::NotSignedIn)?;
        match auth::refresh(&self.http, &self.config, old).await {
            Ok(t) => {
                if let Some(s) = &self.store {
                    if s.save_refreshed(&old.refresh_token, &self.stored(&t))? == Guarded::LeftAlone
                    {
                        log::info!("PSN: the stored sign-in changed elsewhere (another OBS or profile); left as it is");
                    }
                }
                let access = t.access_token.clone();
                *guard = Some(t);
                Ok(access)
            }
            Err(PsnError::SignInExpired) => {
                log::warn!("PSN: the sign-in has expired; a new NPSSO is needed");
                // Only our own dead sign-in goes: another instance may have stored a newer one.
                if let Some(s) = &self.store {
                    s.delete_if_holds(&old.refresh_token)?;
                }
                *guard = None;
                Err(PsnError::SignInExpired)
            }
            Err(e) => Err(e),
        }
    }

    /// What is stored of `t`: the tokens and the device they belong to.
    fn stored(&self, t: &Tokens) -> StoredTokens {
        StoredTokens {
            device_id: Some(self.device_id.clone()),
            ..t.to_stored()
        }
    }

    fn save(&self, t: &Tokens) -> Result<()> {
        match &self.store {
            Some(s) => s.save(&self.stored(t)),
            None => Ok(()),
        }
    }

    /// Sends `req` with the bearer token; on a 401 refreshes once and sends it once more.
    /// Non-2xx answers become errors.
    pub async fn call(&self, req: Request) -> Result<Response> {
        let token = self.access_token().await?;
        let mut first = req.clone();
        let mut retry = req;
        first.bearer = Some(token.clone());
        let resp = self.http.send(first).await?;
        if resp.status != 401 {
            return resp.ok();
        }
        log::info!(
            "PSN: {} answered 401; refreshing the access token once",
            resp.endpoint
        );
        retry.bearer = Some(self.refresh_after_401(&token).await?);
        self.http.send(retry).await?.ok()
    }
}
