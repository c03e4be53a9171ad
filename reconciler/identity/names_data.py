"""Curated reference data for :mod:`reconciler.identity.normalize` (data only, no logic).

Why a curated table at all: the generic spelling rules in ``normalize`` are deliberately
conservative (they only fold variation that never separates two different names). The
most frequent names of the partner population (Arabic, South-Asian, Filipino) have
romanisations that differ by more than those rules can safely bridge (``Md`` / ``Mohammed``,
``Hossain`` / ``Hussein``, ``Othman`` / ``Usman``). Those are listed here explicitly, one
canonical token per name. Each group lists spellings of *one* name only; names that look
alike but are different names (Hussain / Hassan, Muhammad / Mahmoud, Saleh / Salah,
Omar / Ammar) are separate groups, and the import-time check in ``normalize`` refuses a
table where two groups would collide after the generic folding.

Variants are written lower-case ASCII, exactly as they look after punctuation is removed
(``Abd-Allah`` is ``abdallah`` once joined). The canonical token is the first spelling a
reader would recognise; it is a comparison key, not a display form.
"""

from __future__ import annotations

from typing import Final

#: canonical token -> spellings of the same name (the canonical token is implicitly included).
LATIN_VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    # --- the Prophet's name and its abbreviations (Md. = Bangladesh, Mohd = Malaysia, Mhd = Syria)
    "muhammad": (
        "mohammed", "mohamed", "mohammad", "muhammed", "mohamad", "muhamad", "muhamed",
        "mohd", "md", "mhd", "mohmad", "mohammod", "mahomed", "mouhamed", "muhammet",
        "mohamaed",
    ),
    # Mahmoud is a different name (root h-m-d, pattern maf'ul): never merged with Muhammad.
    "mahmud": ("mahmoud", "mahmood", "mehmood", "mehmud", "mahmod"),
    "ahmad": ("ahmed", "ahmet", "ahamed", "ahammed", "ahamad", "ahmmed"),
    # Hussain (diminutive) and Hassan are two names: two groups.
    "hussain": (
        "hussein", "hossain", "husain", "hussien", "hossein", "husein", "hussin", "hosain",
        "hossen", "husayn", "hussen", "hosen",
    ),
    "hassan": ("hasan", "hassen", "hasen"),
    "abdullah": (
        "abdulla", "abdallah", "abdalla", "abdollah", "abdulah", "abdula", "abdellah",
        "abdoulaye", "abdullahi", "abdulahi", "abdelah",
    ),
    "yusuf": (
        "yousef", "youssef", "yousuf", "yusef", "yousif", "yusif", "youssouf", "yosef",
        "yoosuf", "yussuf",
    ),
    "usman": ("osman", "othman", "uthman", "otman", "usmaan", "ousmane", "osmane", "othmane"),
    # Omar / Umar; Ammar is a different name and is *not* here.
    "umar": ("omar", "omer", "umer", "oumar"),
    "ali": ("aly", "alee"),
    "khalid": ("khaled", "khaleed", "khalied"),
    # Saleh (salih, "righteous") vs Salah (salah, "righteousness"): two names.
    "salih": ("saleh", "swaleh", "salleh"),
    "salah": ("salaah",),
    "rahman": ("rehman", "rahaman", "rahmaan", "rehmaan", "rahmane"),
    "rahim": ("raheem", "rehim"),
    "ibrahim": ("ebrahim", "ibraheem", "ebraheem", "ibrahem", "brahim", "ebrahem"),
    "ismail": ("ismael", "ismaeel", "ismayil", "esmail", "ismaail"),
    "yasir": ("yasser", "yaser", "yassir", "yasar"),
    "qadir": ("qader", "kader", "kadir", "qadeer", "kadeer"),
    "fatima": ("fatimah", "fathima", "fatma", "fatema", "fateema", "fathimah", "fatuma"),
    "aisha": ("ayesha", "aysha", "aishah", "aicha", "ayisha", "aesha", "aishat"),
    "nur": ("noor", "nour", "nor", "noer"),
    "uddin": (
        "uddeen", "udin", "uddien", "udeen", "eddine", "eddin", "edine", "addin", "addeen",
        "aldin", "aldeen", "uddine",
    ),
    "chowdhury": (
        "choudhury", "chowdhry", "chaudhry", "chaudhary", "choudhary", "chowdhary", "chaudhri",
        "choudhry", "chaudary", "chowdury", "chodhury", "chaudhuri", "chowdhuri", "choudhari",
    ),
    "kumar": ("kr", "kumaar"),
    "singh": (),
    "mustafa": ("mostafa", "moustafa", "mustapha", "mostapha", "mustefa", "moustapha"),
    "mahdi": ("mehdi",),
    "mohsin": ("mohsen", "muhsin", "mohsine"),
    "husam": ("hossam", "hussam", "hosam"),
    "tariq": ("tarik", "tareq", "tarek", "tarique", "tareque"),
    "siddiqui": ("siddiqi", "siddique", "sidiqui", "siddiky", "siddiki", "sidiqi"),
    "haq": ("haque", "huq", "hoque", "hoq", "haqq"),
    "amin": ("ameen", "amine", "emin"),
    "nasir": ("nasser", "naser", "nassir", "nacer", "naseer"),
    "zainab": ("zaynab", "zeinab", "zenab", "zeynab"),
    "khadija": ("khadijah", "khadeeja", "khadiga", "khadijat", "khadidja"),
    "maryam": ("mariam", "meriem", "mariyam", "maryem"),
    "sheikh": ("shaikh", "shaik", "sheik", "shaykh", "cheikh", "shekh"),
    "syed": ("sayed", "sayyid", "sayyed", "saiyed", "seyed", "syead", "sayyad"),
    "hamza": ("hamzah", "hamzeh", "hamzat"),
    "yahya": ("yehia", "yahia", "yehya", "yahiya"),
    "yunus": ("younis", "younes", "yunis", "younus", "yonis", "younas"),
    "idris": ("idrees", "edris", "idriss"),
    "sulaiman": (
        "suleiman", "sulayman", "soliman", "suleyman", "sleiman", "solaiman", "suleman",
        "sulaimon",
    ),
    "faisal": ("faysal", "feisal", "fayssal", "faisel"),
    "usama": ("osama", "usamah", "oussama", "ousama"),
    "zaid": ("zayd", "zeid"),
    "hafiz": ("hafeez", "hafez"),
    "jamal": ("gamal", "djamel", "jamel"),
    "jafar": ("jaafar", "jaffar", "jafer"),
    "abubakar": (
        "abubakr", "abubaker", "aboubakar", "abobakr", "aboubacar", "abubakir", "abubacar",
    ),
    "akhtar": ("akhter", "akter", "aktar", "akthar"),
    "begum": ("begam", "begom"),
    "khatun": ("khatoon", "khatum"),
    "islam": ("eslam",),
    "saeed": ("said", "saied", "saiid"),
    "anwar": ("anwer", "anouar", "anour"),
    "mansur": ("mansour", "mansoor"),
    "majid": ("majed", "maged", "majeed"),
    "rashid": ("rashed", "rasheed", "rachid"),
    "hamid": ("hamed", "hameed"),
    "walid": ("waleed", "oualid"),
    "adil": ("adel", "aadil", "adeel"),
    "karim": ("kareem", "kerim"),
    "bilal": ("belal", "bilaal"),
    "abbas": ("abas",),
    "qasim": ("kasim", "qassim", "kassem", "qasem", "kassim"),
    "hashim": ("hashem", "hachem"),
    "shahid": ("shahed", "shaheed"),
    "tahir": ("taher", "tahar"),
    "harbi": ("harby",),
    "otaibi": ("otaiby", "utaibi", "oteibi", "otaibe"),
    "qahtani": ("kahtani", "qahtany", "gahtani"),
    "ghamdi": ("ghamdy",),
    "zahrani": ("zahrany",),
    "shammari": ("shamari", "shamri", "shammary"),
    "dosari": ("dossari", "dawsari", "dosary", "dossary"),
    "mutairi": ("mutairy", "motairi", "mtairi"),
    "anazi": ("enezi", "anezi", "enazi", "anzi"),
    "shehri": ("shahri", "shehry"),
    "imran": ("emran", "imraan"),
    "irfan": ("erfan",),
    "khan": ("khaan",),
    "maria": ("ma", "mariah"),
    "john": ("jhon",),
    "mohammadi": ("mohammedi", "muhammadi"),
}

#: Arabic spelling (written naturally; ``normalize`` normalises the keys on import) ->
#: the usual Latin spelling, which ``normalize`` folds into the Latin canonical space.
#: Family names carry the article: ``الحربي`` is handled as ``ال`` + ``حربي``.
ARABIC_NAMES: Final[dict[str, str]] = {
    "محمد": "muhammad", "محمود": "mahmud", "أحمد": "ahmad", "علي": "ali", "عمر": "umar",
    "عثمان": "usman", "حسين": "hussain", "حسن": "hassan", "خالد": "khalid", "صالح": "salih",
    "صلاح": "salah", "عبدالله": "abdullah", "يوسف": "yusuf", "إبراهيم": "ibrahim",
    "إسماعيل": "ismail", "ياسر": "yasir", "فاطمة": "fatima", "عائشة": "aisha", "نور": "nur",
    "عمران": "imran", "خان": "khan", "مصطفى": "mustafa", "سعيد": "saeed", "سيد": "syed",
    "عزيز": "aziz", "رحمن": "rahman", "الرحمن": "rahman", "رحيم": "rahim", "كريم": "karim",
    "قادر": "qadir", "القادر": "qadir", "حربي": "harbi", "سعد": "saad", "فهد": "fahad",
    "فيصل": "faisal", "سلطان": "sultan", "ناصر": "nasir", "سليمان": "sulaiman",
    "منصور": "mansur", "ماجد": "majid", "راشد": "rashid", "حامد": "hamid", "طارق": "tariq",
    "زيد": "zaid", "زينب": "zainab", "مريم": "maryam", "خديجة": "khadija", "أمين": "amin",
    "جمال": "jamal", "جميل": "jamil", "عادل": "adil", "أبوبكر": "abubakar", "بكر": "bakr",
    "عباس": "abbas", "أسامة": "usama", "حمزة": "hamza", "يحيى": "yahya", "يونس": "yunus",
    "إدريس": "idris", "مهدي": "mahdi", "محسن": "mohsin", "حسام": "husam", "شيخ": "sheikh",
    "جعفر": "jafar", "نايف": "naif", "تركي": "turki", "سعود": "saud", "بندر": "bandar",
    "مشعل": "mishal", "وليد": "walid", "هاني": "hani", "رامي": "rami", "سامي": "sami",
    "طلال": "talal", "نواف": "nawaf", "ثامر": "thamer", "عبدالرحمن": "abdulrahman",
    "عبدالعزيز": "abdulaziz", "قاسم": "qasim", "هاشم": "hashim", "بلال": "bilal",
    "أنور": "anwar", "إسلام": "islam", "الدين": "uddin", "دين": "din", "شاه": "shah",
    "قحطاني": "qahtani", "غامدي": "ghamdi", "زهراني": "zahrani", "عتيبي": "otaibi",
    "شمري": "shammari", "دوسري": "dosari", "مطيري": "mutairi", "عنزي": "anazi",
    "شهري": "shehri", "عمار": "ammar", "سلمان": "salman", "عبدالكريم": "abdulkarim",
    "كمال": "kamal", "رضا": "reda", "عيسى": "isa", "موسى": "musa", "زكريا": "zakaria",
    "مالك": "malik", "جابر": "jabir", "نبيل": "nabil", "شريف": "sharif", "لطيف": "latif",
    "هشام": "hisham", "إيمان": "iman", "سارة": "sara", "ليلى": "layla", "هند": "hind",
    "أمل": "amal", "نادية": "nadia", "منى": "mona", "سلمى": "salma", "رقية": "ruqaya",
    "حليمة": "halima", "آمنة": "amina", "صفية": "safiya", "كومار": "kumar",
    "سينغ": "singh", "سنغ": "singh", "ماريا": "maria", "كروز": "cruz", "شودري": "chowdhury",
    "تشودري": "chowdhury", "أختر": "akhtar", "بيغم": "begum", "خاتون": "khatun",
}

#: Tokens too frequent to discriminate between people in this population; the blocking
#: key prefers other tokens (``name_key``). Canonical (normalised) spellings.
COMMON_TOKENS: Final[frozenset[str]] = frozenset({
    "muhammad", "ahmad", "ali", "abdul", "abdullah", "hassan", "hussain", "khan", "kumar",
    "singh", "begum", "khatun", "bibi", "devi", "maria", "mohammadi", "sheikh", "syed",
    "uddin", "islam", "rahman", "akhtar", "mia", "miah", "bahadur", "lal", "ram", "das",
    "shah", "kaur", "abubakar", "umar", "usman", "ibrahim", "santos", "reyes", "cruz",
    "delacruz", "garcia", "bautista", "mendoza",
})

# --- nationality ------------------------------------------------------------------------

#: ICAO Doc 9303 codes that are not ISO 3166-1 alpha-3 but denote an ISO country.
ICAO_TO_ISO3: Final[dict[str, str]] = {
    "D": "DEU",  # Germany writes a single letter in the MRZ
    "GBD": "GBR",  # British Overseas Territories Citizen
    "GBN": "GBR",  # British National (Overseas)
    "GBO": "GBR",  # British Overseas Citizen
    "GBP": "GBR",  # British Protected Person
    "GBS": "GBR",  # British Subject
    "RKS": "XKX",  # Kosovo passports; XKX is the code used by the EU / ISO user-assigned range
}

#: ICAO codes that name a document issuer or a status, not a country. Kept as written (they
#: are distinct issuers and must never be equated with a real nationality); exported so the
#: resolver can treat them as "no nationality information".
NON_NATIONAL_CODES: Final[frozenset[str]] = frozenset({
    "UNA",  # United Nations specialised agency official
    "UNK",  # resident of Kosovo, document issued by UNMIK
    "UNO",  # United Nations Organization official
    "XXA",  # stateless person (1954 Convention)
    "XXB",  # refugee (1951 Convention)
    "XXC",  # refugee (other than the 1951 Convention)
    "XXX",  # unspecified nationality
    "XOM",  # Sovereign Military Order of Malta
    "XPO",  # INTERPOL
    "XCC",  # Caribbean Community
    "XBA",  # African Development Bank
    "XIM",  # African Export-Import Bank
    "EUE",  # European Union laissez-passer
})

#: ISO alpha-2 (plus a few local habits: UK, KSA, UAE) -> alpha-3, for the countries that
#: matter to this institution's partner feeds.
ALPHA2_TO_ISO3: Final[dict[str, str]] = {
    "SA": "SAU", "KSA": "SAU", "IN": "IND", "PK": "PAK", "BD": "BGD", "PH": "PHL", "EG": "EGY",
    "YE": "YEM", "SD": "SDN", "NP": "NPL", "LK": "LKA", "ID": "IDN", "JO": "JOR", "SY": "SYR",
    "ET": "ETH", "KE": "KEN", "UG": "UGA", "AF": "AFG", "MM": "MMR", "IR": "IRN", "IQ": "IRQ",
    "LB": "LBN", "TN": "TUN", "MA": "MAR", "DZ": "DZA", "GB": "GBR", "UK": "GBR", "US": "USA",
    "FR": "FRA", "DE": "DEU", "AE": "ARE", "UAE": "ARE", "KW": "KWT", "QA": "QAT",
    "BH": "BHR", "OM": "OMN", "PS": "PSE", "ER": "ERI", "SO": "SOM", "NG": "NGA",
}

#: English country names and demonyms (upper-case, single spaces) -> alpha-3.
COUNTRY_NAMES_TO_ISO3: Final[dict[str, str]] = {
    "SAUDI": "SAU", "SAUDI ARABIA": "SAU", "SAUDI ARABIAN": "SAU",
    "INDIA": "IND", "INDIAN": "IND", "PAKISTAN": "PAK", "PAKISTANI": "PAK",
    "BANGLADESH": "BGD", "BANGLADESHI": "BGD", "PHILIPPINES": "PHL", "FILIPINO": "PHL",
    "FILIPINA": "PHL", "PHILIPPINE": "PHL", "EGYPT": "EGY", "EGYPTIAN": "EGY",
    "YEMEN": "YEM", "YEMENI": "YEM", "SUDAN": "SDN", "SUDANESE": "SDN", "NEPAL": "NPL",
    "NEPALI": "NPL", "NEPALESE": "NPL", "SRI LANKA": "LKA", "SRI LANKAN": "LKA",
    "INDONESIA": "IDN", "INDONESIAN": "IDN", "JORDAN": "JOR", "JORDANIAN": "JOR",
    "SYRIA": "SYR", "SYRIAN": "SYR", "ETHIOPIA": "ETH", "ETHIOPIAN": "ETH", "KENYA": "KEN",
    "KENYAN": "KEN", "UGANDA": "UGA", "UGANDAN": "UGA", "AFGHANISTAN": "AFG",
    "AFGHAN": "AFG", "MYANMAR": "MMR", "BURMESE": "MMR", "IRAN": "IRN", "IRANIAN": "IRN",
    "IRAQ": "IRQ", "IRAQI": "IRQ", "LEBANON": "LBN", "LEBANESE": "LBN", "TUNISIA": "TUN",
    "TUNISIAN": "TUN", "MOROCCO": "MAR", "MOROCCAN": "MAR", "ALGERIA": "DZA",
    "ALGERIAN": "DZA", "UNITED KINGDOM": "GBR", "BRITISH": "GBR",
    "UNITED STATES": "USA", "AMERICAN": "USA", "FRANCE": "FRA", "FRENCH": "FRA",
    "GERMANY": "DEU", "GERMAN": "DEU",
}
