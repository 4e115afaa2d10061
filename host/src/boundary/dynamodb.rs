//! The `dynamodb` import: items read, queried and written in one transaction,
//! blocking or started; the tables the logic may name are mapped by the
//! backend.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;

use crate::bindings::envmgr::environments::dynamodb::*;
use crate::boundary::Session;
use crate::boundary::started::answer;
use crate::calls::requests::dynamodb as requests;
use crate::capabilities::CapResult;

impl Host for Session {
    async fn get(&mut self, table: String, key: Item) -> wasmtime::Result<CapResult<Option<Item>>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&requests::Get {
                    table: &table,
                    key: &key,
                }),
                b.dynamodb.get(&table, &key),
            )
            .await)
    }

    async fn query(&mut self, request: QueryRequest) -> wasmtime::Result<CapResult<Page>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&requests::Query(&request)),
                b.dynamodb.query(&request),
            )
            .await)
    }

    async fn transact_write(
        &mut self,
        writes: Vec<Write>,
    ) -> wasmtime::Result<Result<(), WriteError>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&requests::TransactWrite(&writes)),
                b.dynamodb.transact_write(&writes),
            )
            .await)
    }

    async fn update(&mut self, request: UpdateItem) -> wasmtime::Result<Result<(), WriteError>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&requests::Update(&request)),
                b.dynamodb.update(&request),
            )
            .await)
    }

    async fn start_get(
        &mut self,
        table: String,
        key: Item,
    ) -> wasmtime::Result<Resource<FutureItem>> {
        let b = self.backends.clone();
        let described = self.describe(&requests::Get {
            table: &table,
            key: &key,
        });
        let call = self.invoke(described, async move { b.dynamodb.get(&table, &key).await });
        self.start(call).await
    }

    async fn start_query(
        &mut self,
        request: QueryRequest,
    ) -> wasmtime::Result<Resource<FuturePage>> {
        let b = self.backends.clone();
        let described = self.describe(&requests::Query(&request));
        let call = self.invoke(described, async move { b.dynamodb.query(&request).await });
        self.start(call).await
    }

    async fn start_transact_write(
        &mut self,
        writes: Vec<Write>,
    ) -> wasmtime::Result<Resource<FutureWrite>> {
        let b = self.backends.clone();
        let described = self.describe(&requests::TransactWrite(&writes));
        let call = self.invoke(described, async move {
            b.dynamodb.transact_write(&writes).await
        });
        self.start(call).await
    }
}

impl HostFutureItem for Session {
    async fn subscribe(
        &mut self,
        handle: Resource<FutureItem>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        Session::subscribe(self, handle)
    }

    async fn get(
        &mut self,
        handle: Resource<FutureItem>,
    ) -> wasmtime::Result<Option<CapResult<Option<Item>>>> {
        Ok(answer(self.take_answer(&handle)?))
    }

    async fn drop(&mut self, handle: Resource<FutureItem>) -> wasmtime::Result<()> {
        self.forget(handle)
    }
}

impl HostFuturePage for Session {
    async fn subscribe(
        &mut self,
        handle: Resource<FuturePage>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        Session::subscribe(self, handle)
    }

    async fn get(
        &mut self,
        handle: Resource<FuturePage>,
    ) -> wasmtime::Result<Option<CapResult<Page>>> {
        Ok(answer(self.take_answer(&handle)?))
    }

    async fn drop(&mut self, handle: Resource<FuturePage>) -> wasmtime::Result<()> {
        self.forget(handle)
    }
}

impl HostFutureWrite for Session {
    async fn subscribe(
        &mut self,
        handle: Resource<FutureWrite>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        Session::subscribe(self, handle)
    }

    async fn get(
        &mut self,
        handle: Resource<FutureWrite>,
    ) -> wasmtime::Result<Option<Result<(), WriteError>>> {
        Ok(answer(self.take_answer(&handle)?))
    }

    async fn drop(&mut self, handle: Resource<FutureWrite>) -> wasmtime::Result<()> {
        self.forget(handle)
    }
}
