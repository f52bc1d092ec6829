//! The vault client component in a store whose `wasi:http` hook answers every request at once
//! from memory, with an answer recorded from the vault: what a get costs inside the
//! component when no network is involved, the floor of the component path. Only for
//! measuring; kvrun's own hooks ([`kvrun::network::OutboundHooks`]) always send.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kvrun::Runtime;
use std::future::Future;
use std::time::Duration;
use wasmtime::component::{Func, Linker, ResourceTable, Val};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// Answers every request with status 200 and the recorded body.
struct RecordedAnswer {
    body: Bytes,
}

type Sent = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for RecordedAnswer {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let body = Full::new(self.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let response = http::Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("a valid response");
        Box::new(async move {
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: RecordedAnswer,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// One instance of kvrun's vault client component (the same build, engine and configuration
/// as a [`kvrun::Client`]'s) whose requests are answered from memory.
pub struct AnsweredInHost {
    store: Store<State>,
    get_secret: Func,
    get_secrets: Func,
}

impl AnsweredInHost {
    /// Instantiates the component with `env` (a client's [`kvrun::Client::component_env`]);
    /// every request it sends is answered with `body`.
    pub async fn new(runtime: &Runtime, env: &[(String, String)], body: Bytes) -> AnsweredInHost {
        let component = runtime
            .load_component("vault-client", kvrun::GUEST_WASM)
            .unwrap()
            .component;
        let mut linker = Linker::<State>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        let state = State {
            wasi: WasiCtxBuilder::new().envs(env).build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: RecordedAnswer { body },
        };
        let mut store = Store::new(runtime.engine(), state);
        store.set_epoch_deadline(Runtime::ticks(Duration::from_secs(3600)));
        store.epoch_deadline_trap();
        let instance = linker
            .instantiate_async(&mut store, &component)
            .await
            .unwrap();
        let keyvault = instance
            .get_export_index(&mut store, None, "kvrun:secrets/keyvault@0.1.2")
            .expect("the keyvault interface");
        let mut export = |name: &str| {
            instance
                .get_export_index(&mut store, Some(&keyvault), name)
                .and_then(|index| instance.get_func(&mut store, index))
                .unwrap_or_else(|| panic!("keyvault.{name}"))
        };
        let get_secret = export("get-secret");
        let get_secrets = export("get-secrets");
        AnsweredInHost {
            store,
            get_secret,
            get_secrets,
        }
    }

    /// `keyvault.get-secret(name, none)`; panics unless the component returns a secret.
    pub async fn get_secret(&mut self, name: &str) {
        let args = [Val::String(name.into()), Val::Option(None)];
        self.call(self.get_secret, &args).await;
    }

    /// `keyvault.get-secrets(names)`: one component call, its requests concurrent; panics
    /// unless the component returns values.
    pub async fn get_secrets(&mut self, names: &[String]) {
        let names = names.iter().map(|n| Val::String(n.clone())).collect();
        self.call(self.get_secrets, &[Val::List(names)]).await;
    }

    async fn call(&mut self, func: Func, args: &[Val]) {
        let mut result = [Val::Bool(false)];
        func.call_async(&mut self.store, args, &mut result)
            .await
            .unwrap();
        match &result[0] {
            Val::Result(Ok(Some(_))) => {}
            Val::Result(Err(error)) => panic!("the component refused the answer: {error:?}"),
            _ => panic!("the component returned an unexpected shape"),
        }
    }
}
