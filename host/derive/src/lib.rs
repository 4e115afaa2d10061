//! `#[derive(Recordable)]` for the types wasmtime's bindgen writes from the
//! WIT (`additional_derives` in `host/src/bindings/mod.rs`): the recording's
//! JSON (format 1, `host/src/bindings/json.rs`) and back, derived once from
//! the WIT's own names rather than written per type.
//!
//! Why not serde: the names the recording uses are the WIT's (`html-url`,
//! `not-found`), which bindgen writes only as `#[component(name = "…")]` on
//! each field and case; serde's derive would use the Rust names, and bindgen
//! has no way to add `#[serde(rename)]`. This derive reads those attributes.
//!
//! The rules (the same the hand-written conversions followed):
//! - a record is an object of its fields under their WIT names;
//! - a case without a payload is its name as a string, a case with one is
//!   `{"name": payload}`;
//! - a field's value is its type's `Recordable` (options `null`, lists
//!   arrays, `list<u8>` base64, an item an object: see `json.rs`).
//!
//! Two types keep the spelling of the service they mirror, in every
//! contract version's bindings alike ([`Spelling`]): `attribute-value`
//! (DynamoDB's `{"null": true}`; an item, a list of name and attribute, is
//! an object) and `deployment-state` (GitHub's `in_progress`). A bindgen
//! type without WIT names is a compile error here.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr, parse_macro_input};

/// Whose names a type's recording spells.
#[derive(Clone, Copy, PartialEq)]
enum Spelling {
    Wit,
    /// DynamoDB's JSON: a case without a payload is `{"null": true}`, and an
    /// item an object of its attributes.
    DynamoDb,
    /// GitHub's REST API: `in_progress`.
    GitHub,
}

impl Spelling {
    fn of(name: &syn::Ident) -> Self {
        match name.to_string().as_str() {
            "AttributeValue" => Spelling::DynamoDb,
            "DeploymentState" => Spelling::GitHub,
            _ => Spelling::Wit,
        }
    }

    fn name(self, wit: LitStr) -> LitStr {
        match self {
            Spelling::GitHub => LitStr::new(&wit.value().replace('-', "_"), wit.span()),
            _ => wit,
        }
    }
}

#[proc_macro_derive(Recordable, attributes(component))]
pub fn derive_recordable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let spelling = Spelling::of(&input.ident);
    let body = match &input.data {
        Data::Struct(data) => record(&data.fields),
        Data::Enum(data) => cases(data.variants.iter(), spelling),
        Data::Union(_) => Err(syn::Error::new_spanned(
            &input.ident,
            "a WIT type is never a union",
        )),
    };
    let Derived {
        record,
        replayed,
        write,
    } = match body {
        Ok(body) => body,
        Err(error) => return error.to_compile_error().into(),
    };
    let name = &input.ident;
    let (generics, arguments, bounds) = input.generics.split_for_impl();
    let item = (spelling == Spelling::DynamoDb).then(|| item(name));
    quote! {
        #item
        impl #generics crate::bindings::json::Recordable for #name #arguments #bounds {
            fn record(&self) -> ::serde_json::Value {
                #record
            }
            fn replayed(value: &::serde_json::Value) -> ::core::option::Option<Self> {
                #replayed
            }
            fn write_json(&self, out: &mut ::std::vec::Vec<u8>) {
                #write
            }
        }
    }
    .into()
}

/// What the derive writes of one type: its tree, the value back from a
/// tree, and the tree's text written without building it.
struct Derived {
    record: Tokens,
    replayed: Tokens,
    write: Tokens,
}

/// `"name":` as JSON writes an object's key. WIT names are ASCII letters,
/// digits and `-` (GitHub's spelling `_`): nothing to escape.
fn key(name: &LitStr) -> syn::Result<syn::LitByteStr> {
    let text = name.value();
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(syn::Error::new_spanned(name, "not a WIT name"));
    }
    Ok(syn::LitByteStr::new(
        format!("\"{text}\":").as_bytes(),
        name.span(),
    ))
}

/// The name bindgen wrote for a field or case: `#[component(name = "…")]`.
fn wit_name(attributes: &[Attribute], span: &dyn quote::ToTokens) -> syn::Result<LitStr> {
    let mut name = None;
    for attribute in attributes.iter().filter(|a| a.path().is_ident("component")) {
        attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                name = Some(meta.value()?.parse::<LitStr>()?);
            } else if meta.input.peek(syn::Token![=]) {
                // Other settings (`wasmtime_crate = …`) are not ours.
                meta.value()?.parse::<Tokens>()?;
            }
            Ok(())
        })?;
    }
    name.ok_or_else(|| {
        syn::Error::new_spanned(
            span,
            "no #[component(name = \"…\")]: not a type bindgen wrote",
        )
    })
}

fn record(fields: &Fields) -> syn::Result<Derived> {
    let Fields::Named(fields) = fields else {
        return Err(syn::Error::new_spanned(
            fields,
            "a WIT record has named fields",
        ));
    };
    let mut inserts = Vec::new();
    let mut reads = Vec::new();
    let mut keyed = Vec::new();
    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named");
        let name = wit_name(&field.attrs, field)?;
        inserts.push(quote! {
            object.insert(#name.to_string(), crate::bindings::json::Recordable::record(&self.#ident));
        });
        reads.push(quote! {
            #ident: crate::bindings::json::Recordable::replayed(
                object.get(#name).unwrap_or(&::serde_json::Value::Null),
            )?
        });
        keyed.push((name.value(), key(&name)?, ident));
    }
    // An object's keys in order, as the tree (a map by key) writes them.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let writes = keyed.iter().enumerate().map(|(i, (_, key, ident))| {
        let comma = (i > 0).then(|| quote! { out.push(b','); });
        quote! {
            #comma
            out.extend_from_slice(#key);
            crate::bindings::json::Recordable::write_json(&self.#ident, out);
        }
    });
    Ok(Derived {
        record: quote! {
            let mut object = ::serde_json::Map::new();
            #(#inserts)*
            ::serde_json::Value::Object(object)
        },
        replayed: quote! {
            let object = value.as_object()?;
            ::core::option::Option::Some(Self { #(#reads),* })
        },
        write: quote! {
            out.push(b'{');
            #(#writes)*
            out.push(b'}');
        },
    })
}

/// An item's attribute: an item (`list<tuple<string, attribute-value>>`) is
/// an object of attribute names (DynamoDB keeps no order among them either).
fn item(attribute: &syn::Ident) -> Tokens {
    quote! {
        impl crate::bindings::json::Recordable for (::std::string::String, #attribute) {
            fn record(&self) -> ::serde_json::Value {
                Self::record_list(::std::slice::from_ref(self))
            }
            fn replayed(value: &::serde_json::Value) -> ::core::option::Option<Self> {
                Self::replayed_list(value)?.pop()
            }
            fn record_list(item: &[Self]) -> ::serde_json::Value {
                ::serde_json::Value::Object(
                    item.iter()
                        .map(|(name, value)| (name.clone(), crate::bindings::json::Recordable::record(value)))
                        .collect(),
                )
            }
            fn write_json(&self, out: &mut ::std::vec::Vec<u8>) {
                Self::write_list(::std::slice::from_ref(self), out)
            }
            /// The object the tree makes: attributes by name, the last of
            /// a name that comes twice.
            fn write_list(item: &[Self], out: &mut ::std::vec::Vec<u8>) {
                let written: ::core::result::Result<(), ::core::convert::Infallible> =
                    crate::bindings::json::write_named(item, out, |value, out| {
                        crate::bindings::json::Recordable::write_json(value, out);
                        ::core::result::Result::Ok(())
                    });
                let ::core::result::Result::Ok(()) = written;
            }
            fn replayed_list(value: &::serde_json::Value) -> ::core::option::Option<::std::vec::Vec<Self>> {
                value
                    .as_object()?
                    .iter()
                    .map(|(name, value)| {
                        ::core::option::Option::Some((name.clone(), crate::bindings::json::Recordable::replayed(value)?))
                    })
                    .collect()
            }
        }
    }
}

fn cases<'a>(
    variants: impl Iterator<Item = &'a syn::Variant>,
    spelling: Spelling,
) -> syn::Result<Derived> {
    let mut arms = Vec::new();
    let mut writes = Vec::new();
    let mut units = Vec::new();
    let mut payloads = Vec::new();
    for variant in variants {
        let ident = &variant.ident;
        let name = spelling.name(wit_name(&variant.attrs, variant)?);
        match &variant.fields {
            Fields::Unit if spelling == Spelling::DynamoDb => {
                arms.push(quote! {
                    Self::#ident => ::serde_json::json!({ #name: true })
                });
                let text = object_of(&name, "true")?;
                writes.push(quote! { Self::#ident => out.extend_from_slice(#text) });
                payloads.push(quote! { #name => ::core::option::Option::Some(Self::#ident) });
            }
            Fields::Unit => {
                arms.push(quote! {
                    Self::#ident => ::serde_json::Value::String(#name.to_string())
                });
                key(&name)?;
                let text =
                    syn::LitByteStr::new(format!("\"{}\"", name.value()).as_bytes(), name.span());
                writes.push(quote! { Self::#ident => out.extend_from_slice(#text) });
                units.push(quote! { #name => ::core::option::Option::Some(Self::#ident) });
            }
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                let open = syn::LitByteStr::new(
                    format!(
                        "{{{}",
                        String::from_utf8(key(&name)?.value()).expect("ASCII")
                    )
                    .as_bytes(),
                    name.span(),
                );
                writes.push(quote! {
                    Self::#ident(payload) => {
                        out.extend_from_slice(#open);
                        crate::bindings::json::Recordable::write_json(payload, out);
                        out.push(b'}');
                    }
                });
                arms.push(quote! {
                    Self::#ident(payload) => {
                        let mut object = ::serde_json::Map::new();
                        object.insert(#name.to_string(), crate::bindings::json::Recordable::record(payload));
                        ::serde_json::Value::Object(object)
                    }
                });
                payloads.push(quote! {
                    #name => ::core::option::Option::Some(Self::#ident(
                        crate::bindings::json::Recordable::replayed(payload)?,
                    ))
                });
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "a WIT case has at most one payload",
                ));
            }
        }
    }
    let record = quote! {
        match self { #(#arms),* }
    };
    let with_payload = if payloads.is_empty() {
        quote! { ::core::option::Option::None }
    } else {
        quote! {
            let (case, payload) = value.as_object()?.iter().next()?;
            match case.as_str() {
                #(#payloads,)*
                _ => ::core::option::Option::None,
            }
        }
    };
    let replayed = quote! {
        if let ::core::option::Option::Some(case) = value.as_str() {
            return match case {
                #(#units,)*
                _ => ::core::option::Option::None,
            };
        }
        #with_payload
    };
    Ok(Derived {
        record,
        replayed,
        write: quote! {
            match self { #(#writes),* }
        },
    })
}

/// `{"name":value}` as JSON text, for a case whose JSON is fixed.
fn object_of(name: &LitStr, value: &str) -> syn::Result<syn::LitByteStr> {
    let key = String::from_utf8(key(name)?.value()).expect("ASCII");
    Ok(syn::LitByteStr::new(
        format!("{{{key}{value}}}").as_bytes(),
        name.span(),
    ))
}
