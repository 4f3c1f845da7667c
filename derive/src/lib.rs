//! `#[derive(Reset)]` for `capacitor-pool`: a pooled struct's `Reset` impl,
//! written from its fields.
//!
//! Use it through `capacitor-pool`'s `derive` feature, which re-exports it
//! as `capacitor_pool::Reset` beside the trait of the same name (as
//! `serde` does with `Serialize`):
//!
//! ```
//! use capacitor_pool::{Pool, Reset};
//!
//! #[derive(Default, Reset)]
//! struct Scratch {
//!     names: Vec<String>,
//!     buf: String,
//! }
//!
//! let pool = Pool::new(Scratch::default);
//! pool.get().buf.push_str("used");
//! assert!(pool.get().buf.is_empty());
//! ```
//!
//! # How it works
//!
//! The derive writes what a hand-written impl would: `reset` calls
//! `Reset::reset` on each field in order, `retained_bytes` adds up each
//! field's `Reset::retained_bytes` (saturating), `shrink_excess` calls each
//! field's `Reset::shrink_excess`. Field attributes change
//! that per field; bounds are added per field type (see [`Reset`]).

#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

use proc_macro::TokenStream;
use proc_macro2::{TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Ident, LitStr, Member, Path, Type};

/// Derives `capacitor_pool::Reset` for a struct: `reset` resets each field
/// in turn, `retained_bytes` is the sum of what each field retains,
/// `shrink_excess` shrinks each field.
///
/// A field's type must implement `Reset` (strings, vectors, `BytesMut`,
/// maps, boxes, `ReusableVec`, other derived structs), or carry one of the
/// field attributes below. With the sum of the fields, a pool's retention
/// limit sees every nested buffer.
///
/// # Examples
///
/// A pooled request whose strings, body and headers keep their capacity
/// between requests (the headers in a `ReusableVec`, which keeps cleared
/// headers, strings included, for the next request):
///
/// ```
/// use capacitor_pool::{Pool, Reset, ReusableVec};
///
/// #[derive(Default, Reset)]
/// struct Header {
///     name: String,
///     value: String,
/// }
///
/// #[derive(Default, Reset)]
/// struct Request {
///     method: String,
///     path: String,
///     headers: ReusableVec<Header>,
///     body: Vec<u8>,
/// }
///
/// let pool = Pool::new(Request::default);
/// let mut req = pool.get();
/// req.path.push_str("/index.html");
/// req.headers.push_with(|h| {
///     h.name.push_str("host");
///     h.value.push_str("example.com");
/// });
/// drop(req); // every field reset; the header kept as a spare
/// let req = pool.get();
/// assert!(req.path.is_empty() && req.headers.is_empty());
/// assert_eq!(req.headers.spares(), 1);
/// assert!(req.retained_bytes() >= "/index.html".len() + "example.com".len());
/// ```
///
/// # Field attributes
///
/// - `#[reset(skip)]`: the field is left as it is and counts 0 retained
///   bytes (an id, a configuration shared by every user); it is not
///   shrunk either.
/// - `#[reset(default)]`: the field is set to `Default::default()` and
///   counts 0 retained bytes (counters, flags, `Option`s); not shrunk.
/// - `#[reset(with = "path::to::fn")]`: the field is reset by calling
///   `fn(&mut field)` and counts 0 retained bytes; not shrunk.
///
/// ```
/// use capacitor_pool::Reset;
///
/// fn zero(buf: &mut [u8; 4]) {
///     *buf = [0; 4];
/// }
///
/// #[derive(Reset)]
/// struct Conn {
///     #[reset(skip)]
///     id: u64,
///     #[reset(default)]
///     requests: u32,
///     #[reset(with = "zero")]
///     peer: [u8; 4],
///     out: Vec<u8>,
/// }
///
/// let mut c = Conn { id: 7, requests: 3, peer: [10, 0, 0, 1], out: Vec::with_capacity(64) };
/// c.reset();
/// assert_eq!((c.id, c.requests, c.peer), (7, 0, [0; 4]));
/// assert_eq!(c.retained_bytes(), 64); // `out` only
/// ```
///
/// # Generics
///
/// For each field whose type names a type parameter, the impl requires
/// that type to implement `Reset` (or `Default`, with `#[reset(default)]`),
/// not the parameter itself: `Vec<T>` resets for any `T`.
///
/// ```
/// use capacitor_pool::Reset;
///
/// #[derive(Reset)]
/// struct Batch<T, M> {
///     items: Vec<T>, // needs `Vec<T>: Reset`: any `T`
///     meta: M,       // needs `M: Reset`
/// }
///
/// struct NotReset;
/// let mut b = Batch { items: vec![NotReset], meta: String::from("m") };
/// b.reset();
/// assert!(b.items.is_empty() && b.meta.is_empty());
/// ```
///
/// Tuple structs and unit structs derive it too.
///
/// # Container attributes
///
/// `#[reset(crate = "path")]` names the `capacitor_pool` crate where it is
/// not reachable as `::capacitor_pool` (a renamed dependency, a
/// re-export).
///
/// # Enums and unions
///
/// They get a compile error: an enum has no one state to reset to (its
/// variants hold different fields), and a union's active field is unknown.
/// Implement `Reset` by hand for them.
///
/// ```compile_fail
/// use capacitor_pool::Reset;
///
/// #[derive(Reset)] // error: supports structs only
/// enum Message {
///     Ping,
///     Data(Vec<u8>),
/// }
/// ```
#[proc_macro_derive(Reset, attributes(reset))]
pub fn derive_reset(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// How the derived impl resets one field.
enum How {
    /// `Reset::reset`, and `Reset::retained_bytes` counted.
    Reset,
    /// Left as it is.
    Skip,
    /// Set to `Default::default()`.
    Default,
    /// Reset by calling this function with `&mut field`.
    With(Path),
}

/// Writes the `Reset` impl for `input`, or the error to report.
fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let krate = crate_path(&input.attrs)?;
    let fields = match &input.data {
        Data::Struct(s) => &s.fields,
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "`#[derive(Reset)]` supports structs only: an enum has no one state to \
                 reset to; implement `Reset` by hand",
            ));
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "`#[derive(Reset)]` supports structs only: a union's active field is \
                 unknown; implement `Reset` by hand",
            ));
        }
    };

    let params: Vec<&Ident> = input.generics.type_params().map(|p| &p.ident).collect();
    let mut bounds = Vec::new();
    let mut resets = Vec::new();
    let mut retained = Vec::new();
    let mut shrinks = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let member = match &field.ident {
            Some(ident) => Member::Named(ident.clone()),
            None => Member::from(i),
        };
        let ty = &field.ty;
        let span = ty.span();
        match field_how(&field.attrs)? {
            How::Reset => {
                if names_any(ty, &params) {
                    bounds.push(quote_spanned!(span=> #ty: #krate::Reset));
                }
                resets.push(quote_spanned!(span=> #krate::Reset::reset(&mut self.#member);));
                retained.push(quote_spanned!(span=> #krate::Reset::retained_bytes(&self.#member)));
                shrinks
                    .push(quote_spanned!(span=> #krate::Reset::shrink_excess(&mut self.#member);));
            }
            How::Skip => {}
            How::Default => {
                if names_any(ty, &params) {
                    bounds.push(quote_spanned!(span=> #ty: ::core::default::Default));
                }
                resets.push(
                    quote_spanned!(span=> self.#member = ::core::default::Default::default();),
                );
            }
            How::With(path) => resets.push(quote_spanned!(path.span()=> #path(&mut self.#member);)),
        }
    }

    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let predicates = where_clause.map(|w| &w.predicates);
    let comma = predicates
        .filter(|p| !p.empty_or_trailing())
        .map(|_| quote!(,));
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Reset for #name #ty_generics
        where
            #predicates #comma
            #(#bounds,)*
        {
            #[inline]
            fn reset(&mut self) {
                #(#resets)*
            }

            #[inline]
            fn retained_bytes(&self) -> usize {
                0usize #(.saturating_add(#retained))*
            }

            #[inline]
            fn shrink_excess(&mut self) {
                #(#shrinks)*
            }
        }
    })
}

/// The path of the `capacitor_pool` crate: `::capacitor_pool`, or the one
/// a `#[reset(crate = "...")]` on the struct names.
fn crate_path(attrs: &[Attribute]) -> syn::Result<Path> {
    let mut krate = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("reset")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                if krate.is_some() {
                    return Err(meta.error("`crate` given twice"));
                }
                krate = Some(meta.value()?.parse::<LitStr>()?.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error("unknown `reset` attribute on a struct: expected `crate = \"...\"`"))
            }
        })?;
    }
    Ok(krate.unwrap_or_else(|| syn::parse_quote!(::capacitor_pool)))
}

/// How a field's `#[reset(...)]` attributes say to reset it.
fn field_how(attrs: &[Attribute]) -> syn::Result<How> {
    let mut how = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("reset")) {
        attr.parse_nested_meta(|meta| {
            let next = if meta.path.is_ident("skip") {
                How::Skip
            } else if meta.path.is_ident("default") {
                How::Default
            } else if meta.path.is_ident("with") {
                let value = meta.value()?;
                if value.peek(LitStr) {
                    How::With(value.parse::<LitStr>()?.parse()?)
                } else {
                    How::With(value.parse()?)
                }
            } else {
                return Err(meta.error(
                    "unknown `reset` attribute on a field: expected `skip`, `default` or \
                     `with = \"path\"`",
                ));
            };
            if how.is_some() {
                return Err(meta
                    .error("a field takes one of `skip`, `default` and `with = \"path\"`, once"));
            }
            how = Some(next);
            Ok(())
        })?;
    }
    Ok(how.unwrap_or(How::Reset))
}

/// Whether `ty` names any of the type parameters `params` (anywhere in
/// it: `Vec<T>`, `T::Item`, `[T; 4]`, `Box<dyn Fn(T)>`).
fn names_any(ty: &Type, params: &[&Ident]) -> bool {
    fn walk(tokens: TokenStream2, params: &[&Ident]) -> bool {
        tokens.into_iter().any(|tt| match tt {
            TokenTree::Ident(ident) => params.iter().any(|p| ident == **p),
            TokenTree::Group(group) => walk(group.stream(), params),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        })
    }
    !params.is_empty() && walk(ty.to_token_stream(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(input: DeriveInput) -> String {
        expand(&input).unwrap().to_string()
    }

    fn error(input: DeriveInput) -> String {
        expand(&input).unwrap_err().to_string()
    }

    #[test]
    fn named_fields_are_reset_and_summed_in_order() {
        let out = expanded(syn::parse_quote! {
            struct S { a: String, b: Vec<u8> }
        });
        let a = out.find(":: capacitor_pool :: Reset :: reset (& mut self . a)");
        let b = out.find(":: capacitor_pool :: Reset :: reset (& mut self . b)");
        assert!(a.is_some() && b.is_some() && a < b, "{out}");
        assert!(
            out.contains(
                "0usize . saturating_add (:: capacitor_pool :: Reset :: retained_bytes (& self . a)) \
                 . saturating_add (:: capacitor_pool :: Reset :: retained_bytes (& self . b))"
            ),
            "{out}"
        );
    }

    #[test]
    fn tuple_fields_are_reached_by_index() {
        let out = expanded(syn::parse_quote! { struct T(String, #[reset(skip)] u64, Vec<u8>); });
        assert!(out.contains("reset (& mut self . 0)"), "{out}");
        assert!(!out.contains("self . 1"), "{out}");
        assert!(out.contains("reset (& mut self . 2)"), "{out}");
    }

    #[test]
    fn bounds_are_added_for_field_types_that_name_a_type_parameter() {
        let out = expanded(syn::parse_quote! {
            struct G<'a, T: Clone, U, const N: usize> where U: Send {
                items: Vec<T>,
                meta: U,
                plain: String,
                #[reset(default)]
                count: Option<T>,
                #[reset(skip)]
                skipped: [T; N],
                borrowed: &'a str,
            }
        });
        assert!(
            out.contains("where U : Send , Vec < T > : :: capacitor_pool :: Reset , U : :: capacitor_pool :: Reset , Option < T > : :: core :: default :: Default ,"),
            "{out}"
        );
        assert!(!out.contains("String :"), "{out}");
        assert!(!out.contains("[T ; N] :"), "{out}");
    }

    #[test]
    fn with_and_crate_attributes_name_their_paths() {
        let out = expanded(syn::parse_quote! {
            #[reset(crate = "my::pool")]
            struct S { #[reset(with = "zero::all")] a: [u8; 4], #[reset(with = clear)] b: Vec<u8> }
        });
        assert!(out.contains("impl my :: pool :: Reset for S"), "{out}");
        assert!(out.contains("zero :: all (& mut self . a) ;"), "{out}");
        assert!(out.contains("clear (& mut self . b) ;"), "{out}");
        assert!(
            out.contains("fn retained_bytes (& self) -> usize { 0usize }"),
            "{out}"
        );
    }

    #[test]
    fn unit_structs_reset_nothing_and_retain_nothing() {
        let out = expanded(syn::parse_quote! { struct U; });
        assert!(out.contains("fn reset (& mut self) { }"), "{out}");
        assert!(out.contains("-> usize { 0usize }"), "{out}");
    }

    #[test]
    fn enums_and_unions_are_refused() {
        let e = error(syn::parse_quote! { enum E { A, B(String) } });
        assert!(e.contains("supports structs only"), "{e}");
        let e = error(syn::parse_quote! { union U { a: u32, b: f32 } });
        assert!(e.contains("supports structs only"), "{e}");
    }

    #[test]
    fn unknown_or_conflicting_attributes_are_refused() {
        let e = error(syn::parse_quote! { struct S { #[reset(keep)] a: String } });
        assert!(e.contains("unknown `reset` attribute on a field"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[reset(skip, default)] a: String } });
        assert!(e.contains("once"), "{e}");
        let e = error(syn::parse_quote! { struct S { #[reset(skip)] #[reset(skip)] a: String } });
        assert!(e.contains("once"), "{e}");
        let e = error(syn::parse_quote! { #[reset(skip)] struct S { a: String } });
        assert!(e.contains("unknown `reset` attribute on a struct"), "{e}");
    }
}
