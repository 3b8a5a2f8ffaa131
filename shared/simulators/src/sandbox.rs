//! The sandbox: a Salesforce org and a PRM filled with realistic sample data, kept under a
//! folder between runs, for `prmsync sync --sandbox`, `prmsync sandbox serve` and tests.
//!
//! The data is the same on every machine (no randomness): dozens of partner and distributor
//! organizations on each side with a few hundred people, unflagged Accounts that must be
//! left alone, a parent/child pair, records that already exist on both sides (linked on the
//! first import), one ambiguous match, and a few records that fail with data errors.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::prm::{Collection, PrmSim};
use crate::salesforce::SalesforceSim;

/// Credentials the sandbox accepts.
pub const SF_CLIENT_ID: &str = "sandbox-client";
pub const SF_CLIENT_SECRET: &str = "sandbox-secret";
pub const PRM_TOKEN: &str = "sandbox-token";
/// The secret the sandbox PRM signs its change notifications with (`prmsync watch
/// --sandbox` checks them with it).
pub const PRM_WEBHOOK_SECRET: &str = "sandbox-webhook-secret";

const COMPANIES: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Litware",
    "Proseware",
    "Adventure Works",
    "Blue Yonder",
    "Coho Vineyard",
    "Wide World",
    "Lucerne",
    "Margie's Travel",
    "Alpine Ski",
    "Trey Research",
    "Woodgrove",
    "Humongous",
    "Fourth Coffee",
    "Wingtip",
    "Datum",
    "Relecloud",
    "Bellows",
    "Graphic Design",
    "Southridge",
    "Consolidated Messenger",
    "School of Fine Art",
    "Nod Publishers",
    "Tasmanian Traders",
    "VanArsdel",
    "Lamna",
    "Munson's Pickles",
    "Best For You",
    "Liberty's Delightful",
    "Adatum",
    "Cronus",
    "Kestrel",
];
const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloe", "Dev", "Elif", "Farah", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena",
    "Marco", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen",
    "Yara", "Zoe",
];
const LAST: &[&str] = &[
    "Abbott",
    "Brandt",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintero",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
];
const TITLES: &[&str] = &["Sales Manager", "Partner Manager", "Engineer", "CEO"];
const CITIES: &[(&str, &str, &str)] = &[
    ("Berlin", "BE", "Germany"),
    ("Lyon", "ARA", "France"),
    ("Austin", "TX", "United States"),
    ("Toronto", "ON", "Canada"),
    ("Osaka", "27", "Japan"),
    ("Leeds", "ENG", "United Kingdom"),
    ("Porto", "13", "Portugal"),
];

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

fn person_name(i: usize) -> (&'static str, &'static str) {
    (FIRST[i % FIRST.len()], LAST[(i * 7 + 3) % LAST.len()])
}

/// Creates `dir` and its missing parents readable by their owner only, and tightens `dir`
/// when it exists with a looser mode (as the one-machine state store does with its folder).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Both simulators of the sandbox.
#[derive(Clone)]
pub struct Sandbox {
    pub salesforce: SalesforceSim,
    pub prm: PrmSim,
}

impl Sandbox {
    /// A sandbox with the sample data.
    pub fn seeded() -> Self {
        let sandbox = Self {
            salesforce: SalesforceSim::new().with_credentials(SF_CLIENT_ID, SF_CLIENT_SECRET),
            prm: PrmSim::new(PRM_TOKEN),
        };
        sandbox.seed();
        sandbox
    }

    /// Loads the sandbox kept in `dir`, or seeds a new one there.
    pub fn load_or_seed(dir: &Path) -> std::io::Result<Self> {
        let (sf, prm) = Self::files(dir);
        if sf.exists() && prm.exists() {
            return Ok(Self {
                salesforce: SalesforceSim::load(&sf)?
                    .with_credentials(SF_CLIENT_ID, SF_CLIENT_SECRET),
                prm: PrmSim::load(&prm, PRM_TOKEN)?,
            });
        }
        let sandbox = Self::seeded();
        sandbox.save(dir)?;
        Ok(sandbox)
    }

    /// Keeps both systems' data in `dir`, a folder readable by its owner only (0700 on
    /// Unix, its missing parents too; tightened when looser).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        private_dir(dir)?;
        let (sf, prm) = Self::files(dir);
        self.salesforce.save(&sf)?;
        self.prm.save(&prm)
    }

    fn files(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("salesforce.json"), dir.join("prm.json"))
    }

    fn seed(&self) {
        let sf = &self.salesforce;
        let prm = &self.prm;
        let partner_group = prm.insert(
            Collection::Groups,
            json!({"kind": "partner", "name": "Partners – Deal Registration", "modules": ["deal_registration", "mdf"]}),
        );
        let partner_training = prm.insert(
            Collection::Groups,
            json!({"kind": "partner", "name": "Partners – Training only", "modules": ["training"]}),
        );
        let distributor_group = prm.insert(
            Collection::Groups,
            json!({"kind": "distributor", "name": "Distributors – Deal Registration", "modules": ["deal_registration"]}),
        );
        let statuses = [
            "Active Partner",
            "Active Partner",
            "Prospective Partner",
            "Active Distributor",
            "Inactive Partner",
            "Active Partner",
            "Inactive Distributor",
        ];
        let mut person = 0usize;
        // Flagged Accounts with Contacts: they become PRM organizations and contacts.
        for (i, company) in COMPANIES.iter().take(20).enumerate() {
            let (city, state, country) = CITIES[i % CITIES.len()];
            let account = sf.insert(
                "Account",
                obj(json!({
                    "Name": format!("{company} Solutions"),
                    "Website": format!("https://www.{}.example", slug(company)),
                    "Phone": format!("+1 555 01{i:02}"),
                    "BillingStreet": format!("{} Market Street", 10 + i),
                    "BillingCity": city,
                    "BillingState": state,
                    "BillingCountry": country,
                    "BillingPostalCode": format!("{:05}", 10000 + i * 37),
                    "Industry": "Technology",
                    "PRM_Sync__c": true,
                    "PRM_Organization_Status__c": statuses[i % statuses.len()],
                })),
            );
            for _ in 0..(4 + i % 5) {
                let (first, last) = person_name(person);
                person += 1;
                sf.insert(
                    "Contact",
                    obj(json!({
                        "Title": TITLES[person % TITLES.len()],
                        "AccountId": account,
                        "FirstName": first,
                        "LastName": last,
                        "Email": format!("{}.{}{}@{}.example", first.to_lowercase(), last.to_lowercase(), person, slug(company)),
                        "Phone": format!("+1 555 2{person:03}"),
                    })),
                );
            }
        }
        // A parent and its child, both flagged.
        let parent = sf.insert(
            "Account",
            obj(json!({
                "Name": "Globex Holdings", "Website": "https://globex.example",
                "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Distributor",
            })),
        );
        sf.insert(
            "Account",
            obj(json!({
                "Name": "Globex Europe", "Website": "https://eu.globex.example", "ParentId": parent,
                "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner",
            })),
        );
        // Unflagged Accounts (customers): left alone.
        for (i, company) in [
            "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Stark",
        ]
        .iter()
        .enumerate()
        {
            let account = sf.insert(
                "Account",
                obj(json!({"Name": format!("{company} Inc."), "Website": format!("https://{}.example", slug(company)), "Type": "Customer"})),
            );
            let (first, last) = person_name(500 + i);
            sf.insert(
                "Contact",
                obj(json!({"AccountId": account, "FirstName": first, "LastName": last, "Email": format!("{}@{}.example", first.to_lowercase(), slug(company))})),
            );
        }
        // Flagged but without an Organization Status: not selected until the status is set.
        sf.insert(
            "Account",
            obj(json!({"Name": "Pending Review Ltd", "PRM_Sync__c": true})),
        );

        // PRM organizations with users and contacts: they become Accounts and Contacts.
        let kinds = [
            ("partner", "active"),
            ("partner", "active"),
            ("distributor", "active"),
            ("partner", "prospective"),
            ("partner", "inactive"),
        ];
        for (i, company) in COMPANIES.iter().skip(20).enumerate() {
            let (kind, status) = kinds[i % kinds.len()];
            let (city, state, country) = CITIES[(i + 3) % CITIES.len()];
            let org = prm.insert(
                Collection::Organizations,
                json!({
                    "kind": kind, "status": status, "name": format!("{company} Partners"),
                    "website": format!("https://{}.example", slug(company)),
                    "phone": format!("+44 20 7946 0{i:03}"), "city": city, "state": state, "country": country,
                }),
            );
            let group = if kind == "distributor" {
                &distributor_group
            } else if i % 3 == 0 {
                &partner_training
            } else {
                &partner_group
            };
            for k in 0..(5 + i % 4) {
                let (first, last) = person_name(person);
                person += 1;
                let email = format!(
                    "{}.{}{}@{}.example",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    person,
                    slug(company)
                );
                let record = if k < 2 {
                    json!({"organization_id": org, "kind": "user", "status": if k == 0 { "active" } else { "pending" },
                           "first_name": first, "last_name": last, "email": email, "title": "Account Executive",
                           "group_ids": [group]})
                } else {
                    json!({"organization_id": org, "kind": "contact", "first_name": first, "last_name": last,
                           "email": email, "phone": format!("+44 20 7946 1{person:03}")})
                };
                prm.insert(Collection::People, record);
            }
        }
        // Already on both sides: linked on the first import instead of duplicated.
        for (i, company) in ["Acme", "Globex Retail", "Cyberdyne"].iter().enumerate() {
            let website = format!("https://www.{}.example", slug(company));
            let account = sf.insert(
                "Account",
                obj(json!({"Name": format!("{company}, Inc."), "Website": website, "Phone": format!("+1 555 09{i}"),
                           "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})),
            );
            let org = prm.insert(
                Collection::Organizations,
                json!({"kind": "partner", "status": "active", "name": company, "website": format!("{}.example", slug(company))}),
            );
            let (first, last) = person_name(900 + i);
            let email = format!(
                "{}.{}@{}.example",
                first.to_lowercase(),
                last.to_lowercase(),
                slug(company)
            );
            sf.insert(
                "Contact",
                obj(json!({"AccountId": account, "FirstName": first, "LastName": last, "Email": email})),
            );
            prm.insert(
                Collection::People,
                json!({"organization_id": org, "kind": "user", "status": "active", "first_name": first,
                       "last_name": last, "email": email.to_uppercase(), "group_ids": [partner_group]}),
            );
        }
        // One Account that matches two PRM organizations: nothing is created, logged.
        sf.insert(
            "Account",
            obj(
                json!({"Name": "Duplicate Dynamics", "Website": "https://dupdyn.example",
                       "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"}),
            ),
        );
        for _ in 0..2 {
            prm.insert(
                Collection::Organizations,
                json!({"kind": "partner", "status": "active", "name": "Duplicate Dynamics", "website": "dupdyn.example"}),
            );
        }
        // Records that fail with data errors, each logged with its fix.
        // A distributor status Salesforce's picklist does not have:
        prm.insert(
            Collection::Organizations,
            json!({"kind": "distributor", "status": "prospective", "name": "Prospect Distribution", "website": "prospect-dist.example"}),
        );
        // A street longer than Salesforce's BillingStreet allows:
        let long_street = prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": "Very Long Address Partners",
                   "street": "Building 7, ".repeat(30)}),
        );
        let _ = long_street;
        // An email Salesforce rejects:
        let org = prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": "Typo Traders", "website": "typo.example"}),
        );
        prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "contact", "first_name": "Ed", "last_name": "Typo", "email": "ed,typo@typo.example"}),
        );
        prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "Fay", "last_name": "Proper",
                   "email": "fay@typo.example", "group_ids": [partner_group]}),
        );
        self.seed_deals(&partner_group, &partner_training, &distributor_group);
    }

    /// Opportunities flagged for Deal Registration: valid ones of each owner type, and one
    /// for each reason an import is refused.
    fn seed_deals(&self, partner_group: &str, training_group: &str, distributor_group: &str) {
        let sf = &self.salesforce;
        let prm = &self.prm;
        let partner = prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": "Deal Partners", "website": "dealpartners.example"}),
        );
        let distributor = prm.insert(
            Collection::Organizations,
            json!({"kind": "distributor", "status": "active", "name": "Deal Distribution", "website": "dealdist.example"}),
        );
        let person = |org: &str,
                      kind: &str,
                      status: Option<&str>,
                      first: &str,
                      email: &str,
                      group: Option<&str>| {
            let mut p = json!({"organization_id": org, "kind": kind, "first_name": first, "last_name": "Seller", "email": email});
            if let Some(s) = status {
                p["status"] = json!(s);
            }
            if let Some(g) = group {
                p["group_ids"] = json!([g]);
            }
            prm.insert(Collection::People, p);
        };
        person(
            &partner,
            "user",
            Some("active"),
            "Alice",
            "alice@dealpartners.example",
            Some(partner_group),
        );
        person(
            &partner,
            "user",
            Some("pending"),
            "Bob",
            "bob@dealpartners.example",
            Some(partner_group),
        );
        person(
            &partner,
            "contact",
            None,
            "Carol",
            "carol@dealpartners.example",
            None,
        );
        person(
            &partner,
            "user",
            Some("active"),
            "Dave",
            "dave@dealpartners.example",
            Some(training_group),
        );
        person(
            &distributor,
            "user",
            Some("active"),
            "Dina",
            "dina@dealdist.example",
            Some(distributor_group),
        );
        // Owner types outside the picklist are possible where an admin unrestricted it.
        sf.add_field(
            "Opportunity",
            crate::salesforce::FieldDef::new(
                "PRM_Deal_Owner_Type__c",
                crate::salesforce::FieldType::Picklist,
            ),
        );
        let customer = sf.insert(
            "Account",
            obj(json!({"Name": "Megacorp Industries", "Website": "https://megacorp.example", "Type": "Customer"})),
        );
        let buyer = sf.insert(
            "Contact",
            obj(json!({"AccountId": customer, "FirstName": "Max", "LastName": "Buyer", "Email": "max@megacorp.example", "Phone": "+1 555 0199"})),
        );
        let partner_email = "alice@dealpartners.example";
        let cases: Vec<(&str, Value, bool)> = vec![
            (
                "Megacorp renewal (partner-owned)",
                json!({"StageName": "Qualification", "Amount": 48000}),
                true,
            ),
            (
                "Megacorp expansion (distributor-owned)",
                json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned", "PRM_Distributor_Email__c": "dina@dealdist.example", "Amount": 120000}),
                true,
            ),
            ("No account", json!({"AccountId": null}), true),
            ("No primary contact", json!({}), false),
            (
                "Partner email missing",
                json!({"PRM_Partner_Email__c": null}),
                true,
            ),
            (
                "Unknown partner",
                json!({"PRM_Partner_Email__c": "nobody@dealpartners.example"}),
                true,
            ),
            (
                "Pending partner user",
                json!({"PRM_Partner_Email__c": "bob@dealpartners.example"}),
                true,
            ),
            (
                "Partner is a contact",
                json!({"PRM_Partner_Email__c": "carol@dealpartners.example"}),
                true,
            ),
            (
                "Partner without deal registration",
                json!({"PRM_Partner_Email__c": "dave@dealpartners.example"}),
                true,
            ),
            (
                "Distributor as partner",
                json!({"PRM_Partner_Email__c": "dina@dealdist.example"}),
                true,
            ),
            (
                "Distributor email missing",
                json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned"}),
                true,
            ),
            (
                "Partner as distributor",
                json!({"PRM_Deal_Owner_Type__c": "Distributor-Owned", "PRM_Distributor_Email__c": "alice@dealpartners.example"}),
                true,
            ),
            (
                "Unknown owner type",
                json!({"PRM_Deal_Owner_Type__c": "Reseller-Owned"}),
                true,
            ),
            (
                "Stage without a PRM value",
                json!({"StageName": "Needs Analysis"}),
                true,
            ),
        ];
        for (name, extra, primary) in cases {
            let mut f = obj(json!({
                "Name": name, "StageName": "Prospecting", "Amount": 25000, "CloseDate": "2026-12-31",
                "AccountId": customer, "PRM_Sync__c": true, "PRM_Export_Deal__c": true,
                "PRM_Partner_Email__c": partner_email,
            }));
            for (k, v) in obj(extra) {
                if v.is_null() {
                    f.remove(&k);
                } else {
                    f.insert(k, v);
                }
            }
            let opp = sf.insert("Opportunity", f);
            if primary {
                sf.insert(
                    "OpportunityContactRole",
                    obj(json!({"OpportunityId": opp, "ContactId": buyer, "IsPrimary": true, "Role": "Decision Maker"})),
                );
            }
        }
        // Not flagged for export: left alone.
        sf.insert(
            "Opportunity",
            obj(json!({"Name": "Internal deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": customer, "PRM_Sync__c": true})),
        );
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_sandbox_folder_is_readable_by_its_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let sandbox_dir = root.path().join("sandbox");
        let data = sandbox_dir.join("data");
        let sandbox = Sandbox::seeded();
        sandbox.save(&data).unwrap();
        assert_eq!((mode(&sandbox_dir), mode(&data)), (0o700, 0o700));

        // a folder made looser earlier is tightened on the next save
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        sandbox.save(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert!(Sandbox::load_or_seed(&data).is_ok());
    }
}
