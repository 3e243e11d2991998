"""Category values of the patients and admissions tables (as they appear in MIMIC), with rough frequencies."""

from __future__ import annotations

from bench.prep.raw_tables.rates import YEAR

M4_ADMISSION_TYPE = (("EW EMER.", 34), ("EU OBSERVATION", 22), ("OBSERVATION ADMIT", 13), ("URGENT", 10),
                     ("SURGICAL SAME DAY ADMISSION", 8), ("DIRECT OBSERVATION", 5), ("DIRECT EMER.", 5),
                     ("ELECTIVE", 2.5), ("AMBULATORY OBSERVATION", 0.5))
M4_ADMISSION_LOCATION = (("EMERGENCY ROOM", 54), ("PHYSICIAN REFERRAL", 26), ("TRANSFER FROM HOSPITAL", 8),
                         ("WALK-IN/SELF REFERRAL", 4), ("PROCEDURE SITE", 2), ("PACU", 1.5), ("CLINIC REFERRAL", 1.5),
                         ("INTERNAL TRANSFER TO OR FROM PSYCH", 1), ("TRANSFER FROM SKILLED NURSING FACILITY", 1),
                         ("AMBULATORY SURGERY TRANSFER", 0.3), ("INFORMATION NOT AVAILABLE", 0.1))
M4_DISCHARGE_LOCATION = (("HOME", 36), (None, 27), ("HOME HEALTH CARE", 17), ("SKILLED NURSING FACILITY", 10),
                         ("REHAB", 2.5), ("CHRONIC/LONG TERM ACUTE CARE", 1), ("HOSPICE", 0.8), ("AGAINST ADVICE", 0.7),
                         ("PSYCH FACILITY", 0.5), ("ACUTE HOSPITAL", 0.5), ("OTHER FACILITY", 0.4),
                         ("ASSISTED LIVING", 0.2), ("HEALTHCARE FACILITY", 0.02))
M4_INSURANCE = (("Other", 52), ("Medicare", 38), ("Medicaid", 10))
M4_LANGUAGE = (("ENGLISH", 90), ("?", 10))
M4_MARITAL = (("MARRIED", 40), ("SINGLE", 33), ("WIDOWED", 12), ("DIVORCED", 8), (None, 7))
M4_RACE = (("WHITE", 62), ("BLACK/AFRICAN AMERICAN", 14), ("OTHER", 4), ("UNKNOWN", 4), ("WHITE - OTHER EUROPEAN", 2),
           ("HISPANIC/LATINO - PUERTO RICAN", 2), ("ASIAN", 1.5), ("ASIAN - CHINESE", 1), ("HISPANIC OR LATINO", 1),
           ("WHITE - RUSSIAN", 1), ("BLACK/CAPE VERDEAN", 1), ("HISPANIC/LATINO - DOMINICAN", 1),
           ("UNABLE TO OBTAIN", 0.5), ("PATIENT DECLINED TO ANSWER", 0.5), ("PORTUGUESE", 0.5))
M4_YEAR_GROUPS = (("2008 - 2010", 2008), ("2011 - 2013", 2011), ("2014 - 2016", 2014), ("2017 - 2019", 2017))
M4_YEAR_GROUP_WEIGHTS = (0.28, 0.27, 0.23, 0.22)
ICD10_FROM = 15.75 * YEAR  # 2015-10-01, counted from 2000-01-01: the US switch to ICD-10

M3_ADMISSION_TYPE = (("EMERGENCY", 80), ("ELECTIVE", 16), ("URGENT", 4))
M3_ADMISSION_LOCATION = (("EMERGENCY ROOM ADMIT", 40), ("PHYS REFERRAL/NORMAL DELI", 18),
                         ("CLINIC REFERRAL/PREMATURE", 20), ("TRANSFER FROM HOSP/EXTRAM", 19),
                         ("TRANSFER FROM SKILLED NUR", 1.5), ("TRANSFER FROM OTHER HEALT", 1),
                         ("** INFO NOT AVAILABLE **", 0.3), ("HMO REFERRAL/SICK", 0.2))
M3_DISCHARGE_LOCATION = (("HOME", 32), ("HOME HEALTH CARE", 24), ("SNF", 14), ("REHAB/DISTINCT PART HOSP", 12),
                         ("LONG TERM CARE HOSPITAL", 4), ("SHORT TERM HOSPITAL", 3), ("DISC-TRAN CANCER/CHLDRN H", 1),
                         ("HOSPICE-HOME", 0.7), ("LEFT AGAINST MEDICAL ADVI", 0.6), ("DISCH-TRAN TO PSYCH HOSP", 0.7),
                         ("HOME WITH HOME IV PROVIDR", 0.1), ("ICF", 0.1), ("OTHER FACILITY", 0.1))
M3_INSURANCE = (("Medicare", 48), ("Private", 38), ("Medicaid", 10), ("Government", 3), ("Self Pay", 1))
M3_LANGUAGE = (("ENGL", 50), (None, 43), ("SPAN", 3), ("RUSS", 1.5), ("PTUN", 1), ("CANT", 0.5), ("PORT", 0.5),
               ("MAND", 0.3), ("HAIT", 0.2))
M3_RELIGION = (("CATHOLIC", 35), ("NOT SPECIFIED", 19), ("UNOBTAINABLE", 14), ("PROTESTANT QUAKER", 13),
               ("JEWISH", 9), ("OTHER", 4), ("EPISCOPALIAN", 1.3), ("GREEK ORTHODOX", 0.8),
               ("CHRISTIAN SCIENTIST", 0.7), ("BUDDHIST", 0.5), ("MUSLIM", 0.4), (None, 0.8))
M3_MARITAL = (("MARRIED", 42), ("SINGLE", 23), ("WIDOWED", 12), ("DIVORCED", 6), (None, 17 - 1.5),
              ("SEPARATED", 1), ("UNKNOWN (DEFAULT)", 0.5))
M3_ETHNICITY = (("WHITE", 70), ("BLACK/AFRICAN AMERICAN", 9), ("UNKNOWN/NOT SPECIFIED", 8), ("HISPANIC OR LATINO", 2),
                ("OTHER", 2.5), ("ASIAN", 2.5), ("UNABLE TO OBTAIN", 1.5), ("PATIENT DECLINED TO ANSWER", 1),
                ("HISPANIC/LATINO - PUERTO RICAN", 1.3), ("ASIAN - CHINESE", 0.5), ("WHITE - RUSSIAN", 0.5),
                ("BLACK/CAPE VERDEAN", 0.3))
M3_DIAGNOSIS = (("NEWBORN", 1), ("PNEUMONIA", 4), ("SEPSIS", 3), ("CONGESTIVE HEART FAILURE", 2.5),
                ("CORONARY ARTERY DISEASE", 2.5), ("CHEST PAIN", 2), ("INTRACRANIAL HEMORRHAGE", 1.5),
                ("ALTERED MENTAL STATUS", 1.5), ("GASTROINTESTINAL BLEED", 1.5), ("UPPER GI BLEED", 1),
                ("ABDOMINAL PAIN", 1), ("FEVER", 1), ("SHORTNESS OF BREATH", 1), ("HYPOTENSION", 1),
                ("STROKE/TIA", 1), ("S/P FALL", 1), ("AORTIC STENOSIS", 1), ("RESPIRATORY FAILURE", 1),
                ("SUBARACHNOID HEMORRHAGE", 0.8), ("DIABETIC KETOACIDOSIS", 0.7), ("ACUTE RENAL FAILURE", 0.7),
                ("OVERDOSE", 0.7), ("CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA", 2),
                ("LIVER FAILURE", 0.5), ("PANCREATITIS", 0.5), ("PULMONARY EMBOLISM", 0.5), ("SYNCOPE", 0.5),
                ("COPD EXACERBATION", 0.5), ("UROSEPSIS", 0.4), ("BRAIN MASS", 0.4))
