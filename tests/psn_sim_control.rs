//! psn-sim itself: its strictness (requests lacking the recorded headers, bad tokens, bad bodies
//! are answered as PSN does; unknown fields are recorded) and its control API over HTTP.

use std::time::Duration;

use serde_json::{json, Value};

async fn sim() -> (psn_sim::SimHandle, reqwest::Client) {
    let sim = psn_sim::start(psn_sim::SimConfig::default()).await.unwrap();
    (
        sim,
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    )
}

async fn token(sim: &psn_sim::SimHandle, http: &reqwest::Client) -> String {
    use base64::Engine;
    let c = sim.config();
    let base = sim.base_url();
    let r = http
        .get(format!("{base}/api/authz/v3/oauth/authorize?duid=d-1&access_type=offline&client_id={}&redirect_uri=x%3A%2F%2Fr&response_type=code&scope=s", c.client_id))
        .header("User-Agent", "t")
        .header("Cookie", format!("npsso={}", c.npsso))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", c.client_id, c.client_secret));
    let r = http
        .post(format!("{base}/api/authz/v3/oauth/token"))
        .header("User-Agent", "t")
        .header("Authorization", format!("Basic {basic}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "code={code}&grant_type=authorization_code&redirect_uri=x&token_format=jwt&extra=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["refresh_token_expires_in"], 5183999);
    assert_eq!(v["token_type"], "bearer");
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn strict_about_headers_tokens_and_bodies() {
    let (sim, http) = sim().await;
    let t = token(&sim, &http).await;
    assert_eq!(sim.unexpected(), vec!["token: form extra".to_string()]);
    let url = format!(
        "{}/api/sessionManager/v2/sys/gameBase/parties/bulkGet?limit=11",
        sim.base_url()
    );
    let good = |rb: reqwest::RequestBuilder| {
        rb.header("User-Agent", "okhttp/4.12.0")
            .header("x-psn-request-id", uuid::Uuid::new_v4().to_string())
            .header("x-psn-app-ver", "PlayStationApp-Android/26.1.0")
            .header("Content-Type", "application/json")
    };
    // A bulkGet with every recorded header, this bearer token and this body.
    let bulk_get = |bearer: &str, body: &'static str| {
        good(http.post(&url))
            .header("Authorization", format!("Bearer {bearer}"))
            .body(body)
            .send()
    };
    // Missing request id -> 400 with PSN's error shape.
    let r = http
        .post(&url)
        .header("User-Agent", "x")
        .header("Authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 2281473);
    assert!(uuid::Uuid::parse_str(v["error"]["referenceId"].as_str().unwrap()).is_ok());
    // A token the sim did not issue -> 401.
    let r = bulk_get("forged", "{}").await.unwrap();
    assert_eq!(r.status(), 401);
    // Required field missing -> 400; unknown field recorded.
    let r = bulk_get(&t, r#"{"nope":1}"#).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(sim.unexpected().contains(&"bulkGet: nope".to_string()));
    let r = bulk_get(&t, r#"{"groupInvitedPartySessions":[]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"parties": []}));
    // Wrong content type.
    let r = http
        .post(&url)
        .header("User-Agent", "okhttp/4.12.0")
        .header("x-psn-request-id", uuid::Uuid::new_v4().to_string())
        .header("x-psn-app-ver", "PlayStationApp-Android/26.1.0")
        .header("Content-Type", "text/plain")
        .header("Authorization", format!("Bearer {t}"))
        .body(r#"{"groupInvitedPartySessions":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(sim.count("bulkGet"), 5);
}

/// The control API (`/_sim/...`) of one simulator.
struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http.post(url).json(&body).send().await.unwrap()
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http.delete(url).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let r = self.http.get(url).send().await.unwrap();
        r.json().await.unwrap()
    }
}

#[tokio::test]
async fn control_api_drives_a_party() {
    let (sim, http) = sim().await;
    let base = sim.base_url();
    let control = Control {
        http: http.clone(),
        base: base.clone(),
    };
    let r = control
        .post(
            "/_sim/parties",
            json!({"name": "demo", "members": [{"onlineId": "alice", "platform": "PS5"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    let sid = p["sessionId"].as_str().unwrap().to_string();
    assert_eq!(p["members"].as_array().unwrap().len(), 2);
    let r = control
        .post(
            &format!("/_sim/parties/{sid}/members"),
            json!({"onlineId": "bob", "platform": "PS4"}),
        )
        .await;
    let bob = r.json::<Value>().await.unwrap()["accountId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sim.party(&sid).unwrap()["members"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = control
        .delete(&format!("/_sim/parties/{sid}/members/{bob}"))
        .await;
    assert_eq!(r.status(), 200);
    let r = control
        .post(
            &format!("/_sim/parties/{sid}/script"),
            json!({"steps": [{"afterMs": 10, "join": {"onlineId": "carol", "platform": "PS5"}}, {"afterMs": 10, "end": true}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sim.party(&sid).is_none(), "the script ended the party");
    let r = control
        .post(
            "/_sim/faults",
            json!({"kind": "rate_limit", "count": 1, "retry_after_secs": 7}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{base}/np/serveraddr"))
        .header("User-Agent", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"code": 2138635, "message": "Rate limit exceeded"}})
    );
    assert_eq!(
        control.get_json("/_sim/counts").await,
        json!({"serveraddr": 1})
    );
    let bad = control.post("/_sim/faults", json!({"kind": "nope"})).await;
    assert_eq!(bad.status(), 400);
    let state = control.get_json("/_sim/state").await;
    assert_eq!(state["pushConnections"], 0);
}
