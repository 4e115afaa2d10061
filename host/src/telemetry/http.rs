//! Requests to dependencies over reqwest (the Runtime Service, Segment),
//! each in its `http` span with the span's context as a `traceparent`
//! header: every reqwest call to a dependency goes through [`send`].

/// Send a reqwest request in an `http` span, with the span's
/// `traceparent` header.
pub async fn send(
    builder: reqwest::RequestBuilder,
    template: &'static str,
) -> reqwest::Result<reqwest::Response> {
    use tracing::Instrument as _;
    if !super::spans::enabled() {
        return builder.send().await;
    }
    let (client, request) = builder.build_split();
    let mut request = request?;
    let span = super::spans::http(
        request.method().as_str(),
        request.url().host_str().unwrap_or(""),
        template,
    );
    let traced = async {
        if let Some(value) = super::context::current_traceparent()
            .and_then(|v| reqwest::header::HeaderValue::from_str(&v).ok())
        {
            request
                .headers_mut()
                .insert(super::context::TRACEPARENT, value);
        }
        let answer = client.execute(request).await;
        super::spans::http_status(
            &tracing::Span::current(),
            answer.as_ref().ok().map(|r| r.status().as_u16()),
        );
        answer
    };
    traced.instrument(span).await
}
