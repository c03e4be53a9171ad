"""Name tables for the synthetic world: realistic pools per naming culture.

A *token* is one name part ("Muhammad", "Abdul Rahman", "Al-Harbi", "Dela Cruz") with every
Latin spelling partners are known to use for it, and its Arabic-script form where one is
natural. Persons are drawn as token ids; each delivered row then picks a spelling, so the
same person legitimately appears as "Mohammed Imran Khan" in one feed and "MD. IMRAN KHAN" in
another. Keeping spellings per token (not per full name) is what lets the generator produce
transliteration noise for a million rows with array indexing instead of string surgery.

Spec syntax: ``"Spelling1|Spelling2|...=arabic*weight"`` (``=arabic`` and ``*weight`` are
optional).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Token:
    variants: tuple[str, ...]
    arabic: str
    weight: float


def _parse(spec: str) -> Token:
    weight = 1.0
    if "*" in spec:
        spec, w = spec.rsplit("*", 1)
        weight = float(w)
    arabic = ""
    if "=" in spec:
        spec, arabic = spec.split("=", 1)
    variants = tuple(dict.fromkeys(v.strip() for v in spec.split("|") if v.strip()))
    return Token(variants, arabic.strip(), weight)


def _al(base: str, arabic: str, *alts: str) -> str:
    """A Gulf family name with its article written every way partners write it."""
    forms = [f"Al-{base}", f"Al{base.lower()}", f"Al {base}", f"El-{base}"]
    forms += [f"Al-{a}" for a in alts]
    return "|".join(forms) + f"={arabic}"


ARAB_MALE = [
    "Mohammed|Muhammad|Mohamed|Mohammad|Muhammed=محمد*8",
    "Ahmed|Ahmad=أحمد*3",
    "Abdulrahman|Abdul Rahman|Abd al-Rahman|Abdel Rahman|Abdurrahman=عبدالرحمن*2",
    "Abdullah|Abdallah|Abdulla|Abdalla=عبدالله*2",
    "Abdulaziz|Abdul Aziz|Abd al-Aziz|Abdelaziz=عبدالعزيز",
    "Abdulrahim|Abdul Rahim|Abdelrahim|Abd al-Rahim=عبدالرحيم",
    "Abdelfattah|Abdel Fattah|Abdul Fattah|Abd al-Fattah=عبدالفتاح",
    "Khalid|Khaled=خالد*2", "Omar|Umar=عمر*2", "Ali=علي*2",
    "Hussein|Hussain|Husain|Hussien=حسين", "Hassan|Hasan=حسن",
    "Youssef|Yousef|Yusuf|Yousif=يوسف", "Ibrahim|Ebrahim=إبراهيم", "Saleh|Salih=صالح",
    "Faisal|Faysal=فيصل", "Mahmoud|Mahmood|Mahmud=محمود", "Mustafa|Mostafa|Moustafa=مصطفى",
    "Osman|Othman|Uthman=عثمان", "Saad=سعد", "Fahad|Fahd=فهد", "Nasser|Naser|Nasir=ناصر",
    "Tariq|Tarek|Tareq=طارق", "Hamza|Hamzah=حمزة", "Yasser|Yasir|Yaser=ياسر",
    "Sultan=سلطان", "Majed|Majid=ماجد", "Waleed|Walid=وليد", "Sami=سامي", "Adel|Adil=عادل",
    "Ayman|Aiman=أيمن", "Saeed|Said|Saied=سعيد", "Jamal|Gamal=جمال", "Salem|Salim=سالم",
    "Suleiman|Sulaiman|Soliman|Sulayman=سليمان", "Idris|Idriss|Edris=إدريس", "Adam=آدم",
    "Hamid|Hamed=حامد", "Mansour|Mansur=منصور", "Turki=تركي", "Bandar=بندر",
    "Nawaf|Nauaf=نواف", "Musa|Mousa|Moussa=موسى", "Yagoub|Yacoub|Yaqub=يعقوب",
]
ARAB_FEMALE = [
    "Fatima|Fatimah|Fatma=فاطمة*2", "Aisha|Aysha|Ayesha|Aicha=عائشة", "Maryam|Mariam=مريم",
    "Noura|Nora|Nura=نورة", "Sara|Sarah=سارة", "Huda|Hoda=هدى", "Amina|Aminah|Amna=آمنة",
    "Zainab|Zaynab|Zeinab=زينب", "Khadija|Khadeeja|Khadijah=خديجة", "Hala=هالة",
    "Reem|Rim=ريم", "Layla|Leila|Laila=ليلى", "Asma|Asmaa=أسماء", "Mona|Muna=منى",
    "Salma=سلمى", "Nouf|Nuf=نوف", "Hessa|Hissa=حصة",
]
SAUDI_FAMILY = [
    _al("Harbi", "الحربي", "Harby"), _al("Otaibi", "العتيبي", "Utaibi"),
    _al("Qahtani", "القحطاني", "Kahtani"), _al("Ghamdi", "الغامدي"),
    _al("Zahrani", "الزهراني"), _al("Shehri", "الشهري", "Shahri"),
    _al("Dosari", "الدوسري", "Dossary", "Dossari"), _al("Mutairi", "المطيري", "Mutairy"),
    _al("Anazi", "العنزي", "Enezi"), _al("Subaie", "السبيعي", "Subaei"),
    _al("Shammari", "الشمري", "Shamari"), _al("Malki", "المالكي"), _al("Juhani", "الجهني"),
    _al("Rashidi", "الرشيدي"), _al("Sahli", "السهلي"), _al("Yami", "اليامي"),
    _al("Omari", "العمري"), _al("Hajri", "الهاجري"),
]
EGYPT_FAMILY = [
    "El-Sayed|Elsayed|Al-Sayed|El Sayed=السيد*2", "Abdel Fattah|Abdelfattah|Abdul Fattah=عبدالفتاح",
    "Hassan|Hasan=حسن", "Mahmoud|Mahmoud|Mahmud=محمود", "El-Masry|Al-Masri|Elmasry=المصري",
    "Farouk|Farouq|Faruk=فاروق", "Ramadan|Ramadhan=رمضان", "Shehata|Shehatah|Shihata=شحاتة",
    "Abdelaziz|Abdel Aziz|Abdul Aziz=عبدالعزيز", "Mostafa|Mustafa=مصطفى",
    "Ibrahim|Ebrahim=إبراهيم", "Soliman|Suleiman|Sulaiman=سليمان", "Gaber|Jaber|Jabir=جابر",
    "Hegazy|Hegazi|Hijazi=حجازي", "Fouad|Fuad=فؤاد", "Ashour|Ashur=عاشور",
]
YEMEN_FAMILY = [
    "Al-Amoudi|Alamoudi|Al-Amudi|Al Amoudi=العمودي", "Bawazir|Ba-Wazir|Ba Wazir=باوزير",
    "Al-Hadhrami|Al-Hadrami|Alhadrami=الحضرمي", "Al-Ahdal|Alahdal|El-Ahdal=الأهدل",
    "Al-Yafei|Al-Yafai|Alyafei=اليافعي", "Al-Kathiri|Alkathiri=الكثيري", "Saeed|Said=سعيد",
    "Al-Sharabi|Alsharabi|Al-Sharaby=الشرعبي", "Bin Mahfouz|Binmahfouz|Bin Mahfuz=بن محفوظ",
    "Al-Maqtari|Almaqtari|Al-Makhtari=المقطري", "Al-Wesabi|Alwesabi|Al-Wisabi=الوصابي",
]
SUDAN_FAMILY = [
    "Elamin|Al-Amin|El-Amin|Alamin=الأمين", "Babiker|Babikir|Babakir=بابكر",
    "Elhassan|Al-Hassan|El-Hassan=الحسن", "Eltayeb|Al-Tayeb|El-Tayeb|Altayeb=الطيب",
    "Abdelrahim|Abdel Rahim|Abdul Rahim=عبدالرحيم", "Idris|Idriss|Edris=إدريس", "Adam=آدم",
    "Hamid|Hamed=حامد", "Osman|Othman=عثمان", "Abdalla|Abdullah|Abdallah=عبدالله",
    "Elnour|Al-Nour|El-Nur|Alnour=النور", "Musa|Mousa|Moussa=موسى",
    "Elsheikh|El-Sheikh|Al-Sheikh=الشيخ",
]
SA_MUSLIM_GIVEN = [
    "Muhammad|Mohammad|Mohammed|Muhammed|Md.=محمد*10", "Ghulam|Gulam=غلام",
    "Abdul Rahman|Abdulrahman|Abdur Rahman|Abd al-Rahman=عبدالرحمن*2",
    "Abdul Karim|Abdulkarim|Abdul Kareem=عبدالكريم", "Ali=علي", "Syed|Sayed|Saiyed=سيد*2",
    "Imran=عمران", "Asif|Aasif=آصف", "Bilal=بلال", "Tariq|Tarik=طارق",
    "Usman|Osman|Othman=عثمان", "Faisal|Faysal=فيصل", "Kamran=كامران", "Irfan=عرفان",
    "Adnan=عدنان", "Zubair|Zubayr|Zuber=زبير", "Hussain|Hussein|Hossain|Husain=حسين",
    "Ahmed|Ahmad=أحمد",
]
SA_MUSLIM_MIDDLE = [
    "Imran=عمران", "Asif|Aasif=آصف", "Bilal=بلال", "Tariq|Tarik=طارق", "Usman|Osman=عثمان",
    "Kamran=كامران", "Irfan=عرفان", "Adnan=عدنان", "Nadeem|Nadim=نديم", "Shahid|Shaheed=شاهد",
    "Rashid|Rasheed=رشيد", "Waqas=وقاص", "Arshad=أرشد", "Javed|Javaid|Jawed=جاويد",
    "Naveed|Navid=نويد", "Iqbal=إقبال", "Akram=أكرم", "Aslam=أسلم", "Anwar|Anwer=أنور",
    "Saleem|Salim=سليم", "Rafiq|Rafique=رفيق", "Yousaf|Yusuf|Yousuf=يوسف", "Ashraf=أشرف",
    "Abbas=عباس", "Abdul Rahman|Abdulrahman|Abd al-Rahman=عبدالرحمن",
]
SA_MUSLIM_FAMILY = [
    "Khan=خان*4", "Ahmed|Ahmad=أحمد*2", "Ali=علي*2", "Hussain|Hossain|Husain|Hussein=حسين*2",
    "Malik=ملك", "Chaudhry|Chaudhary|Choudhry", "Butt|Bhatt", "Qureshi|Qureshy|Kureshi=قريشي",
    "Sheikh|Shaikh|Shaykh=شيخ", "Iqbal=إقبال", "Akhtar|Akhter=أختر", "Rana", "Mirza=ميرزا",
    "Abbasi=عباسي", "Siddiqui|Siddiqi|Siddique=صديقي", "Ansari=أنصاري", "Javed|Javaid=جاويد",
]
SA_MUSLIM_FEMALE = [
    "Fatima|Fatimah=فاطمة", "Ayesha|Aisha=عائشة", "Maryam|Mariam=مريم", "Sana=سناء",
    "Nadia|Nadiya=نادية", "Rubina|Rubeena=روبينة", "Shazia|Shaziya=شازية",
]
BANGLA_GIVEN = [
    "Md.|Mohammad|Muhammad|Mohammed|Md=محمد*14", "Abdur Rahim|Abdur Rohim|Abdul Rahim=عبدالرحيم",
    "Abul Kalam|Abul Kalaam=أبو الكلام", "Rafiqul|Rofiqul|Rafikul", "Shahidul|Shohidul",
    "Aminul|Aminool", "Kamrul|Komrul", "Nurul|Noorul", "Mizanur|Mizan ur", "Habibur|Habibor",
    "Mostafizur|Mustafizur", "Anisur|Anisor", "Saiful|Shaiful", "Jahangir", "Alamgir",
    "Delwar|Dilwar",
]
BANGLA_MIDDLE = [
    "Rafiqul|Rofiqul|Rafikul", "Shahidul|Shohidul", "Aminul|Aminool", "Kamrul|Komrul",
    "Nurul|Noorul", "Mizanur|Mizan ur", "Habibur|Habibor", "Mostafizur|Mustafizur",
    "Anisur|Anisor", "Saiful|Shaiful", "Abdul=عبد", "Jahangir", "Alamgir",
]
BANGLA_FAMILY = [
    "Islam=إسلام*4", "Rahman|Rahaman|Rohman=رحمن*3", "Hossain|Hussain|Hossen|Hosen=حسين*3",
    "Alam=علم", "Uddin|Uddeen|Ud Din=الدين*2", "Miah|Mia|Mian", "Sarkar|Sircar|Shorkar",
    "Haque|Hoque|Huq=حق", "Mollah|Molla|Mullah", "Bhuiyan|Bhuiya|Bhuyan",
    "Chowdhury|Chowdhuri|Choudhury", "Ahmed|Ahmad=أحمد", "Ali=علي",
]
BANGLA_FEMALE = [
    "Nasrin|Nasreen", "Fatema|Fatima=فاطمة", "Rokeya|Rokeia", "Shirin|Sherin",
    "Taslima|Tasleema", "Salma=سلمى",
]
BANGLA_FAMILY_FEMALE = ["Akter|Akhter|Akhtar*3", "Begum|Begom*2", "Khatun|Khatoon", "Islam"]
INDIAN_MALE = [
    "Suresh", "Ramesh", "Rajesh", "Mahesh", "Sunil", "Anil", "Vijay|Vijai", "Santosh|Santhosh",
    "Manoj", "Ravi", "Sanjay|Sanjai", "Arun", "Prakash", "Dinesh", "Ganesh", "Mohan",
    "Krishna|Krishnan", "Biju", "Shaji", "Joseph|Josef", "Thomas", "George",
]
INDIAN_FEMALE = [
    "Lakshmi|Laxmi", "Priya", "Anita", "Sunita", "Deepa|Dipa", "Reena|Rina", "Mary",
    "Jincy|Jinsy",
]
INDIAN_MIDDLE_MALE = ["Kumar*5", "Babu", "Lal", "Chandra|Chander", "Prasad|Prasath", "Raj",
                      "Nath", "Kutty|Kutti"]
INDIAN_MIDDLE_FEMALE = ["Devi", "Kumari", "Rani"]
INDIAN_FAMILY = [
    "Nair|Nayar", "Pillai|Pillay", "Menon", "Sharma", "Singh*2", "Yadav|Yadava", "Patel",
    "Reddy|Reddi", "Kumar", "Das", "Gupta", "Verma|Varma", "Thomas", "Joseph", "George",
    "Varghese|Verghese|Varghis", "Kurian|Kuriyan", "Mathew|Mathews|Mathai", "Abraham",
    "Chacko|Chako", "Naidu", "Rao", "Shetty|Shetti", "Iyer|Aiyar",
]
NEPALI_MALE = [
    "Ram", "Hari", "Krishna", "Bishnu|Vishnu", "Shyam", "Gopal", "Dil", "Man", "Bir", "Suman",
    "Dipak|Deepak", "Rajendra", "Santosh", "Bikash|Vikash", "Prem",
]
NEPALI_FEMALE = ["Sita", "Gita|Geeta", "Maya", "Kamala|Kamla", "Sarita", "Radha"]
NEPALI_MIDDLE_MALE = ["Bahadur|Bahadoor*4", "Prasad", "Kumar", "Raj", "Lal", "Bikram|Vikram"]
NEPALI_MIDDLE_FEMALE = ["Kumari*3", "Maya", "Devi"]
NEPALI_FAMILY = [
    "Thapa", "Gurung", "Tamang", "Magar", "Rai", "Limbu", "Shrestha|Shresta|Srestha", "Sharma",
    "Adhikari", "Karki", "Bhandari", "Tharu", "Yadav", "Khadka", "Basnet|Basnyat",
    "Poudel|Paudel|Poudyal", "Ghimire|Ghimirey", "Bhattarai", "Chaudhary|Chaudhari", "Lama",
]
FILIPINO_MALE = [
    "Juan", "Jose", "Mark", "John Paul|Johnpaul|Jon Paul", "Michael|Micheal", "Christian",
    "Jerome", "Reynaldo|Reynald", "Ramon", "Rodel", "Arnel", "Ronaldo|Ronald", "Jomar",
    "Jayson|Jason", "Rey", "Noel", "Romeo", "Eduardo|Edwardo",
]
FILIPINO_FEMALE = [
    "Maria|Ma.|Marie*3", "Ana|Anna", "Rosa", "Jennifer|Jenifer", "Mary Grace|Marygrace|Mary-Grace",
    "Joy", "Marites|Maritess", "Cristina|Christina|Kristina", "Liza|Lisa", "Rowena",
    "Analyn|Anna Lyn", "Jocelyn|Joselyn", "Lorna", "Evangeline",
]
FILIPINO_MIDDLE_MALE = ["Carlos", "Miguel", "Antonio", "Luis", "Manuel"]
FILIPINO_MIDDLE_FEMALE = ["Grace", "Luz", "Cristina|Christina", "Rose|Rosa", "Joy", "Fe"]
FILIPINO_FAMILY = [
    "Dela Cruz|De La Cruz|Delacruz|Dela-Cruz*2", "Santos*2", "Reyes*2", "Cruz", "Bautista",
    "Garcia", "Mendoza", "Ramos", "Aquino", "Castillo", "Villanueva|Villa Nueva",
    "Fernandez|Fernandes", "Gonzales|Gonzalez", "Del Rosario|Delrosario|Del-Rosario",
    "De Guzman|Deguzman|De-Guzman", "Mercado", "Pascual", "Navarro", "Domingo", "Manalo",
    "Soriano", "Tolentino", "Santiago",
]


@dataclass(frozen=True)
class Culture:
    """How one naming culture composes a full name.

    ``middle_rate`` is the share of persons with a middle part (father's name, second given
    name, "Kumar", …); ``connector`` marks Gulf names that can carry bin/bint before it.
    """

    name: str
    male_given: tuple[str, ...]
    female_given: tuple[str, ...]
    male_middle: tuple[str, ...]
    female_middle: tuple[str, ...]
    male_family: tuple[str, ...]
    female_family: tuple[str, ...]
    middle_rate: float
    connector: bool = False


def _c(name: str, mg: list[str], fg: list[str], mm: list[str], fm: list[str], mf: list[str],
       ff: list[str] | None = None, middle_rate: float = 1.0, connector: bool = False) -> Culture:
    return Culture(name, tuple(mg), tuple(fg), tuple(mm), tuple(fm), tuple(mf),
                   tuple(ff if ff is not None else mf), middle_rate, connector)


# Arab cultures: the middle part is the father's name, hence always a male given name.
CULTURES: tuple[Culture, ...] = (
    _c("saudi", ARAB_MALE, ARAB_FEMALE, ARAB_MALE, ARAB_MALE, SAUDI_FAMILY, connector=True),
    _c("egyptian", ARAB_MALE, ARAB_FEMALE, ARAB_MALE, ARAB_MALE, EGYPT_FAMILY + ARAB_MALE[:12]),
    _c("yemeni", ARAB_MALE, ARAB_FEMALE, ARAB_MALE, ARAB_MALE, YEMEN_FAMILY, connector=True),
    _c("sudanese", ARAB_MALE, ARAB_FEMALE, ARAB_MALE, ARAB_MALE, SUDAN_FAMILY),
    _c("south_asian_muslim", SA_MUSLIM_GIVEN, SA_MUSLIM_FEMALE, SA_MUSLIM_MIDDLE,
       ["Bibi", "Begum|Begam", "Parveen|Perveen"], SA_MUSLIM_FAMILY,
       middle_rate=0.75),
    _c("bangla", BANGLA_GIVEN, BANGLA_FEMALE, BANGLA_MIDDLE, ["Begum|Begom", "Khatun"],
       BANGLA_FAMILY, BANGLA_FAMILY_FEMALE, middle_rate=0.6),
    _c("indian", INDIAN_MALE, INDIAN_FEMALE, INDIAN_MIDDLE_MALE, INDIAN_MIDDLE_FEMALE,
       INDIAN_FAMILY, middle_rate=0.5),
    _c("nepali", NEPALI_MALE, NEPALI_FEMALE, NEPALI_MIDDLE_MALE, NEPALI_MIDDLE_FEMALE,
       NEPALI_FAMILY, middle_rate=0.6),
    _c("filipino", FILIPINO_MALE, FILIPINO_FEMALE, FILIPINO_MIDDLE_MALE, FILIPINO_MIDDLE_FEMALE,
       FILIPINO_FAMILY, middle_rate=0.5),
)
CULTURE_INDEX = {c.name: i for i, c in enumerate(CULTURES)}
ARABIC_SCRIPT_CULTURES = frozenset({"saudi", "egyptian", "yemeni", "sudanese",
                                    "south_asian_muslim", "bangla"})

Arr = npt.NDArray[np.generic]


class TokenTable:
    """Every token of every pool, flattened into arrays for vectorised rendering.

    ``spelling[offset[t] + k]`` is the k-th spelling of token t (``count[t]`` of them);
    ``spaced`` is the same with a trailing space so names concatenate without a join.
    ``pools[(culture, slot, sex)]`` holds (token ids, probabilities) to draw from.
    """

    def __init__(self) -> None:
        tokens: list[Token] = []
        ids_by_spec: dict[str, int] = {}
        self.pools: dict[tuple[int, str, int], tuple[npt.NDArray[np.int32],
                                                     npt.NDArray[np.float64]]] = {}
        for ci, cult in enumerate(CULTURES):
            slots = {("given", 0): cult.male_given, ("given", 1): cult.female_given,
                     ("middle", 0): cult.male_middle, ("middle", 1): cult.female_middle,
                     ("family", 0): cult.male_family, ("family", 1): cult.female_family}
            for (slot, sex), specs in slots.items():
                ids: list[int] = []
                for spec in specs:
                    if spec not in ids_by_spec:
                        ids_by_spec[spec] = len(tokens)
                        tokens.append(_parse(spec))
                    ids.append(ids_by_spec[spec])
                w = np.array([tokens[i].weight for i in ids], dtype=np.float64)
                self.pools[(ci, slot, sex)] = (np.array(ids, dtype=np.int32), w / w.sum())
        self.tokens = tokens
        counts = [len(t.variants) for t in tokens]
        self.count = np.array(counts, dtype=np.int32)
        self.offset = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        flat = [v for t in tokens for v in t.variants]
        for v in flat:
            # the CSV writer relies on this: no field built from these pools needs quoting
            assert "," not in v and '"' not in v and "\n" not in v, v
        self.spelling = np.array([*flat, ""], dtype=object)  # last slot = "no token"
        self.spaced = np.array([v + " " for v in flat] + [""], dtype=object)
        self.empty = len(flat)
        self.arabic = np.array([t.arabic for t in tokens], dtype=object)
        self.has_arabic = np.array([bool(t.arabic) for t in tokens], dtype=bool)


TOKENS = TokenTable()

EMPLOYER_PREFIXES = (
    "Al Noor", "Gulf", "Al Faisaliah", "Red Sea", "Desert Rose", "Najd", "Al Madina",
    "Eastern Province", "Golden Palm", "Al Safwa", "Al Yamama", "Tihama", "Asir", "Al Jazeera",
    "Oasis", "Falcon", "Crescent", "Sahara", "Arabian Shield", "Al Waha", "Al Khaleej", "Qasr",
    "Al Bayan", "Hijaz", "Al Ahsa", "Jeddah Star", "Riyadh Pearl", "Al Dana", "Al Murjan",
)
EMPLOYER_SECTORS = (
    "Contracting", "Catering", "Cleaning Services", "Construction", "Trading", "Maintenance",
    "Logistics", "Facilities Management", "Security Services", "Hospitality", "Agriculture",
    "Auto Services", "Medical Services", "Manpower", "Steel Works", "Electrical Works",
    "Bakery", "Restaurants", "Textiles", "Plastics",
)
EMPLOYER_SUFFIXES = ("Co", "Est.", "Company", "LLC", "Group", "Trading Est.")
