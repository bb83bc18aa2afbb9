//! The input as typed structs: the container and its fields, with the
//! parsed attributes and the original syntax kept for error spans.

use proc_macro2::Span;
use syn::ext::IdentExt as _;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, PathArguments, Type};

use super::attr::{ContainerAttrs, FieldAttrs};
use super::naming;
use crate::ctxt::Ctxt;

/// A struct deriving `Resource`.
#[derive(Debug)]
pub(crate) struct Container<'a> {
    /// The struct's name.
    pub(crate) ident: &'a Ident,
    /// `#[resource(...)]` on the struct.
    pub(crate) attrs: ContainerAttrs,
    /// The named fields, in order (including skipped ones).
    pub(crate) fields: Vec<Field<'a>>,
}

/// One named field.
#[derive(Debug)]
pub(crate) struct Field<'a> {
    /// The field as written.
    pub(crate) original: &'a syn::Field,
    /// Its name.
    pub(crate) ident: &'a Ident,
    /// `#[resource(...)]` on the field.
    pub(crate) attrs: FieldAttrs,
}

impl<'a> Container<'a> {
    /// Reads the input. `None` when it is not a plain struct with named
    /// fields (the reason is recorded in `cx`).
    pub(crate) fn from_ast(
        cx: &Ctxt,
        input: &'a DeriveInput,
        attrs: ContainerAttrs,
    ) -> Option<Self> {
        const NAMED: &str = "`#[derive(Resource)]` supports only structs with named fields";
        let mut supported = true;
        if !input.generics.params.is_empty() {
            cx.error_spanned_by(
                &input.generics,
                "`#[derive(Resource)]` does not support generic structs or lifetimes: a resource is one concrete table",
            );
            supported = false;
        } else if let Some(where_clause) = &input.generics.where_clause {
            cx.error_spanned_by(
                where_clause,
                "`#[derive(Resource)]` does not support `where` clauses",
            );
            supported = false;
        }
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(&named.named),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(unnamed, format!("{NAMED}, not tuple structs"));
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(&input.ident, format!("{NAMED}, not unit structs"));
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(data.enum_token, format!("{NAMED}, not enums"));
                None
            }
            Data::Union(data) => {
                cx.error_spanned_by(data.union_token, format!("{NAMED}, not unions"));
                None
            }
        };
        let fields = fields?
            .iter()
            .filter_map(|f| {
                Some(Field {
                    original: f,
                    ident: f.ident.as_ref()?,
                    attrs: FieldAttrs::from_ast(cx, &f.attrs),
                })
            })
            .collect();
        supported.then_some(Self {
            ident: &input.ident,
            attrs,
            fields,
        })
    }

    /// The singular snake-case name: `name = ...` or the struct's name.
    pub(crate) fn name(&self) -> String {
        self.attrs.name.get().map_or_else(
            || naming::snake_case(&self.ident.unraw().to_string()),
            syn::LitStr::value,
        )
    }

    /// The plural name: `plural = ...` or the plural of the name.
    pub(crate) fn plural(&self) -> String {
        self.attrs
            .plural
            .get()
            .map_or_else(|| naming::plural(&self.name()), syn::LitStr::value)
    }

    /// The table: `table = ...` or the plural name.
    pub(crate) fn table(&self) -> String {
        self.attrs
            .table
            .get()
            .map_or_else(|| self.plural(), syn::LitStr::value)
    }

    /// The human label: `label = ...` or the struct's name in words.
    pub(crate) fn label(&self) -> String {
        self.attrs.label.get().map_or_else(
            || naming::struct_label(&self.ident.unraw().to_string()),
            syn::LitStr::value,
        )
    }

    /// The human plural label: `plural_label = ...` or the label's plural.
    pub(crate) fn plural_label(&self) -> String {
        self.attrs
            .plural_label
            .get()
            .map_or_else(|| naming::plural(&self.label()), syn::LitStr::value)
    }

    /// The stored fields (not `skip`).
    pub(crate) fn stored_fields(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|f| f.is_stored())
    }

    /// The field called `name`.
    pub(crate) fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.name() == name)
    }
}

impl Field<'_> {
    /// The name used in metadata (the identifier without `r#`).
    pub(crate) fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// The declared type.
    pub(crate) fn ty(&self) -> &Type {
        &self.original.ty
    }

    /// Whether the field is stored (not `#[resource(skip)]`).
    pub(crate) fn is_stored(&self) -> bool {
        !self.attrs.skip.is_set()
    }

    /// The column: `column = ...` or the field's name.
    pub(crate) fn column(&self) -> String {
        self.attrs
            .column
            .get()
            .map_or_else(|| self.name(), syn::LitStr::value)
    }

    /// The label: `label = ...` or the field's name in words.
    pub(crate) fn label(&self) -> String {
        self.attrs
            .label
            .get()
            .map_or_else(|| naming::field_label(&self.name()), syn::LitStr::value)
    }

    /// The span of the declared type, for errors about it.
    pub(crate) fn ty_span(&self) -> Span {
        syn::spanned::Spanned::span(self.ty())
    }
}

/// `ty` without invisible groups and parentheses.
fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(g) => ty = &g.elem,
            Type::Paren(p) => ty = &p.elem,
            _ => return ty,
        }
    }
}

/// The last path segment of `ty` if its name is `name`, with its generic
/// arguments.
fn last_segment<'t>(ty: &'t Type, name: &str) -> Option<&'t PathArguments> {
    match peel(ty) {
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            (last.ident == name).then_some(&last.arguments)
        }
        _ => None,
    }
}

/// The single type argument of `ty` if it is `<name><T>`.
fn single_arg<'t>(ty: &'t Type, name: &str) -> Option<&'t Type> {
    match last_segment(ty, name)? {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match args.args.first()? {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// Syntactically `Option<T>`: `T`.
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    single_arg(ty, "Option")
}

/// Syntactically `String`.
pub(crate) fn is_string(ty: &Type) -> bool {
    matches!(last_segment(ty, "String"), Some(PathArguments::None))
}

/// Syntactically `String` or `Option<String>`.
pub(crate) fn is_string_like(ty: &Type) -> bool {
    is_string(ty) || option_inner(ty).is_some_and(is_string)
}

/// Syntactically `Option<DateTime<..>>`.
pub(crate) fn is_optional_date_time(ty: &Type) -> bool {
    option_inner(ty).is_some_and(|inner| single_arg(inner, "DateTime").is_some())
}

/// `ty` as written, for messages (`Vec<u8>`, `std::collections::HashMap<String, i64>`).
pub(crate) fn type_text(ty: &Type) -> String {
    let mut s = quote::quote!(#ty).to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// For a field type that is certainly not a resource field type (a
/// standard type such as `u32`, `Vec<u8>` or `HashMap<..>`, also inside an
/// `Option`), what to use instead. Other types (the host's own, aliases)
/// are left to the `FieldValue` bound.
pub(crate) fn unsupported_type_hint(ty: &Type) -> Option<&'static str> {
    let ty = option_inner(ty).unwrap_or(ty);
    let name = match peel(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last()?.ident.to_string(),
        Type::Reference(_) => return Some("use `String` for text (a field owns its value)"),
        Type::Tuple(_) | Type::Array(_) | Type::Slice(_) => {
            return Some(
                "use `serde_json::Value` for a list or a pair, or a resource of its own with `belongs_to`",
            );
        }
        _ => return None,
    };
    Some(match name.as_str() {
        "u8" | "u16" | "i8" | "i16" => "use `i32`",
        "u32" | "u64" | "usize" | "isize" | "i128" | "u128" => "use `i64`",
        "f32" => "use `f64`",
        "char" | "str" | "Cow" => "use `String`",
        "Box" | "Rc" | "Arc" => "use the inner type itself",
        "NaiveDateTime" => "use `chrono::DateTime<Utc>` (stored in UTC)",
        "Vec" if single_arg(ty, "Vec").is_some_and(|t| last_segment(t, "u8").is_some()) => {
            "store bytes base64-encoded in a `String`"
        }
        "Vec" | "VecDeque" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" => {
            "use `serde_json::Value` for a list or a map, or a resource of its own with `belongs_to`"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(s: &str) -> Type {
        syn::parse_str(s).unwrap()
    }

    #[test]
    fn unsupported_types_get_a_hint_and_others_are_left_alone() {
        for (t, hint) in [
            ("u32", "i64"),
            ("Option<u8>", "i32"),
            ("f32", "f64"),
            ("Vec<u8>", "base64"),
            ("Vec<String>", "serde_json::Value"),
            (
                "std::collections::HashMap<String, String>",
                "serde_json::Value",
            ),
            ("&'static str", "String"),
            ("(i64, i64)", "serde_json::Value"),
            ("chrono::NaiveDateTime", "DateTime<Utc>"),
        ] {
            let found = unsupported_type_hint(&ty(t)).unwrap_or_else(|| panic!("{t}"));
            assert!(found.contains(hint), "{t}: {found}");
        }
        for t in [
            "i64",
            "Option<String>",
            "Money",
            "chrono::DateTime<Utc>",
            "serde_json::Value",
        ] {
            assert_eq!(unsupported_type_hint(&ty(t)), None, "{t}");
        }
        assert_eq!(
            type_text(&ty("std::collections::HashMap<String, Vec<u8>>")),
            "std::collections::HashMap<String, Vec<u8>>"
        );
    }

    #[test]
    fn syntactic_types() {
        assert!(is_string(&ty("String")));
        assert!(is_string(&ty("std::string::String")));
        assert!(!is_string(&ty("Option<String>")));
        assert!(is_string_like(&ty("Option<String>")));
        assert!(is_string_like(&ty("::core::option::Option<String>")));
        assert!(!is_string_like(&ty("i64")));
        assert!(!is_string_like(&ty("Option<i64>")));
        assert!(!is_string_like(&ty("&str")));
        assert!(option_inner(&ty("Option<i64>")).is_some());
        assert!(is_optional_date_time(&ty("Option<DateTime<Utc>>")));
        assert!(is_optional_date_time(&ty(
            "Option<chrono::DateTime<chrono::Utc>>"
        )));
        assert!(!is_optional_date_time(&ty("DateTime<Utc>")));
        assert!(!is_optional_date_time(&ty("Option<NaiveDate>")));
    }
}
