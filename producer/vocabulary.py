"""Word lists behind `producer.synth`: job families, names, places, and phrase templates.

Plain data, kept apart from the generator so each stays readable. Every family lists titles,
skills and duties of one line of work; candidates are drawn mostly from the family of the job
they apply to, so synthetic scores spread the way real ones do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    """One line of work."""

    name: str
    titles: tuple[str, ...]
    skills: tuple[str, ...]
    duties: tuple[str, ...]
    industries: tuple[str, ...]


# Word lists read better packed than one item per line.
# fmt: off
FAMILIES: tuple[Family, ...] = (
    Family(
        "software",
        ("Backend Engineer", "Software Engineer", "Full-Stack Developer", "Platform Engineer",
         "Frontend Engineer", "Site Reliability Engineer", "Mobile Engineer"),
        ("Python", "Go", "Java", "TypeScript", "React", "PostgreSQL", "Kafka", "Kubernetes",
         "AWS", "gRPC", "Redis", "Docker", "Terraform", "GraphQL", "Rust", "CI/CD", "Linux",
         "Prometheus", "distributed systems", "system design", "Kotlin", "Swift"),
        ("the order-processing service", "a multi-tenant REST API", "the payments pipeline",
         "the deployment tooling", "the search backend", "a real-time notification system",
         "the authentication service", "observability dashboards and alerts",
         "the mobile checkout flow", "a Kafka-based event pipeline", "the CI pipeline",
         "database schema migrations", "the on-call runbooks", "a feature-flag platform"),
        ("fintech", "e-commerce", "SaaS", "logistics", "gaming", "travel"),
    ),
    Family(
        "data",
        ("Data Scientist", "Data Engineer", "Machine Learning Engineer", "Analytics Engineer",
         "Data Analyst", "Applied Scientist"),
        ("SQL", "Python", "Spark", "dbt", "Airflow", "PyTorch", "scikit-learn", "Snowflake",
         "BigQuery", "Tableau", "statistics", "A/B testing", "pandas", "feature engineering",
         "causal inference", "MLOps", "Looker", "time-series forecasting", "NLP", "Databricks"),
        ("the churn-prediction model", "a demand-forecasting pipeline", "the experimentation "
         "platform", "the customer data warehouse", "a recommendation model", "nightly ETL jobs",
         "the fraud-detection features", "executive KPI dashboards", "a data-quality framework",
         "the pricing model", "a document-classification model", "the attribution model"),
        ("retail", "insurance", "healthcare", "media", "fintech", "marketplaces"),
    ),
    Family(
        "product",
        ("Product Manager", "Senior Product Manager", "Product Designer", "UX Researcher",
         "UX Designer", "Product Owner"),
        ("roadmapping", "user research", "Figma", "SQL", "Jira", "prototyping", "accessibility",
         "stakeholder management", "OKRs", "usability testing", "design systems", "analytics",
         "pricing", "discovery interviews", "go-to-market", "wireframing"),
        ("the onboarding funnel", "the self-serve billing experience", "a design system",
         "the mobile app redesign", "quarterly roadmap planning", "the pricing page",
         "a customer feedback program", "the admin console", "the search experience",
         "an accessibility audit"),
        ("SaaS", "consumer apps", "edtech", "healthtech", "marketplaces"),
    ),
    Family(
        "finance",
        ("Financial Analyst", "Senior Accountant", "FP&A Manager", "Controller",
         "Treasury Analyst", "Audit Associate"),
        ("Excel", "financial modeling", "SAP", "IFRS", "US GAAP", "forecasting", "Power BI",
         "NetSuite", "variance analysis", "month-end close", "budgeting", "SOX controls",
         "cash management", "consolidation", "VBA"),
        ("the monthly close", "the annual budget", "board reporting packs",
         "the rolling forecast", "intercompany reconciliations", "the audit file",
         "cash-flow forecasting", "a cost-allocation model", "revenue recognition reviews",
         "the ERP migration"),
        ("banking", "manufacturing", "retail", "energy", "professional services"),
    ),
    Family(
        "sales",
        ("Account Executive", "Marketing Manager", "SEO Specialist", "Customer Success Manager",
         "Sales Development Representative", "Growth Marketer"),
        ("Salesforce", "HubSpot", "pipeline management", "negotiation", "Google Ads",
         "content strategy", "SEO", "email marketing", "account planning", "cold outreach",
         "customer retention", "lifecycle marketing", "Google Analytics", "public speaking"),
        ("the mid-market pipeline", "an outbound campaign", "the enterprise renewal book",
         "the content calendar", "paid acquisition campaigns", "the partner program",
         "a customer advisory board", "the lead-scoring model", "regional trade events",
         "quarterly business reviews"),
        ("SaaS", "medical devices", "telecom", "consumer goods", "advertising"),
    ),
    Family(
        "healthcare",
        ("Registered Nurse", "Clinical Data Manager", "Nurse Practitioner",
         "Clinical Research Coordinator", "Pharmacist", "Physical Therapist"),
        ("patient care", "Epic EHR", "triage", "BLS/ACLS", "care planning", "GCP",
         "clinical trials", "medication management", "patient education", "infection control",
         "REDCap", "HIPAA", "wound care", "discharge planning"),
        ("a 30-bed surgical unit", "the discharge process", "a phase II oncology trial",
         "medication reconciliation", "the infection-control program", "patient intake",
         "the case-report forms", "a falls-prevention initiative", "new-graduate onboarding"),
        ("hospitals", "clinical research", "outpatient care", "pharma"),
    ),
    Family(
        "operations",
        ("Operations Manager", "Supply Chain Analyst", "Logistics Coordinator",
         "Procurement Specialist", "Project Manager", "Business Analyst"),
        ("SAP", "Lean", "Six Sigma", "inventory planning", "vendor management", "Excel",
         "process mapping", "MS Project", "S&OP", "contract negotiation", "Tableau",
         "risk management", "PMP", "change management"),
        ("the regional distribution center", "supplier onboarding", "the S&OP cycle",
         "warehouse slotting", "the procurement policy", "a vendor consolidation program",
         "last-mile delivery routes", "the quarterly operating review", "an ERP rollout"),
        ("logistics", "manufacturing", "retail", "automotive", "food and beverage"),
    ),
)

SENIORITY = ("Junior", "", "", "Senior", "Senior", "Staff", "Lead")
FIRST_NAMES = (
    "Aisha", "Mateo", "Priya", "Lukas", "Mei", "Omar", "Sofia", "Kwame", "Hannah", "Diego",
    "Yuki", "Amara", "Jonas", "Fatima", "Liam", "Elena", "Ravi", "Chloe", "Tomasz", "Nia",
    "Andrei", "Leila", "Samuel", "Ingrid", "Carlos", "Zanele", "Hiroshi", "Maya", "Emeka", "Sara",
)
LAST_NAMES = (
    "Okafor", "Garcia", "Sharma", "Müller", "Chen", "Haddad", "Rossi", "Mensah", "Schmidt",
    "Fernández", "Tanaka", "Nwosu", "Berg", "Rahman", "O'Brien", "Popescu", "Iyer", "Dubois",
    "Kowalski", "Johnson", "Novak", "Karimi", "Adeyemi", "Lindqvist", "Silva", "Kim", "Park",
)
CITIES = (
    "Berlin", "Amsterdam", "London", "Lisbon", "Toronto", "Austin", "Chicago", "Warsaw",
    "Barcelona", "Dublin", "Bangalore", "Singapore", "Nairobi", "Melbourne", "Boston", "Zurich",
)
COMPANY_HEADS = (
    "Northwind", "Bluefin", "Lumen", "Cobalt", "Harbor", "Kestrel", "Vertex", "Meridian",
    "Quartz", "Alder", "Tidewater", "Juniper", "Helix", "Orbit", "Summit", "Copperleaf",
)
COMPANY_TAILS = ("Labs", "Systems", "Health", "Analytics", "Group", "Logistics", "Software", "AG")
UNIVERSITIES = (
    "University of Toronto", "TU Munich", "University of Lisbon", "Georgia Tech",
    "University of Warsaw", "National University of Singapore", "University of Nairobi",
    "KTH Royal Institute of Technology", "University of Texas at Austin", "Trinity College Dublin",
    "IIT Madras", "University of Amsterdam", "Open University",
)
DEGREES = ("BSc", "BA", "MSc", "MA", "MBA", "BEng", "PhD")
FIELDS = (
    "Computer Science", "Statistics", "Economics", "Business Administration", "Nursing",
    "Mathematics", "Industrial Engineering", "Psychology", "Finance", "Information Systems",
)
VERBS = (
    "Led", "Built", "Redesigned", "Owned", "Automated", "Launched", "Scaled", "Migrated",
    "Streamlined", "Introduced", "Coordinated", "Delivered", "Improved", "Rebuilt", "Drove",
)
JOB_VERBS = ("Own", "Build", "Improve", "Shape", "Run", "Scale", "Maintain", "Design", "Lead")
RESULTS = (
    "cutting turnaround time by {p}%", "saving roughly {n} hours a month",
    "growing the metric it served by {p}%", "reducing incidents by {p}% quarter over quarter",
    "supporting {n}k users without added headcount", "lifting conversion by {p}%",
    "bringing error rates down by {p}%", "with zero unplanned downtime over {n} months",
    "adopted by {n} teams across the company", "reducing cost by {p}% year over year",
)
CONTEXTS = (
    "working closely with product and operations", "as part of a cross-functional team of {n}",
    "while mentoring two junior colleagues", "under a tight regulatory deadline",
    "from first prototype to general availability", "in partnership with an external vendor",
)
SUMMARY_OPENERS = (
    "{title} with {years} years of experience in {industry}.",
    "Results-oriented {title_lower} who has spent {years} years in {industry}.",
    "{years} years as a {title_lower}, most recently in {industry}.",
)
SUMMARY_CLAIMS = (
    "Known for turning ambiguous problems into shipped, measurable outcomes.",
    "Comfortable owning work end to end, from discovery to support.",
    "Strong communicator who writes things down and keeps stakeholders aligned.",
    "Enjoys mentoring and raising the bar for the whole team.",
    "Looking for a role with more ownership and a product that matters.",
    "Recently focused on {skill} and {skill2}.",
)
BENEFITS = (
    "Flexible hours and a hybrid setup", "30 days of paid leave", "Learning budget of 1,500 EUR",
    "Company pension plan", "Parental leave beyond the statutory minimum",
    "Home-office equipment allowance", "Health insurance for you and your family",
    "Stock options", "Public-transport pass",
)
LANGUAGES = ("English", "German", "Spanish", "French", "Portuguese", "Polish", "Hindi", "Swahili")
WORK_MODES = ("Remote", "Hybrid", "On-site")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# fmt: on
