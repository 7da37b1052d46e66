"""Export-control measures: the catalogue's vocabulary, the share of a flow each measure withholds, and the
declared judgements on catalogue rows, each with its reason (data, no computation)."""

from __future__ import annotations

from typing import Any

MEASURES = ("ban", "suspension", "quota", "licensing", "tax", "disruption")
ALL = "all"
WILD = "*"

#: Fraction of the targeted flow withheld while a measure is in force: uniform on [lo, hi].
MAGNITUDES: dict[str, dict[str, Any]] = {
    "ban": {"lo": 1.0, "hi": 1.0, "reason": "a ban prohibits the flow; what still arrives through third "
                                             "countries is Responses.leakage, not part of the magnitude"},
    "suspension": {"lo": 1.0, "hi": 1.0, "reason": "an export suspension (e.g. DR Congo's cobalt, Feb–Oct 2025) "
                                                   "stops the flow like a ban"},
    "quota": {"lo": 0.4, "hi": 0.6, "reason": "the catalogue's two volume quotas: China's 2010 REE quota ~40 % "
                                              "below 2009 (50,145 t to ~30,000 t, scope note of CHN-2010-REE-QUOTA); "
                                              "DR Congo's 96,600 t/yr cobalt quota is 57 % below its 2024 mine output "
                                              "(226,000 t, USGS MCS 2026 in the bundled production table)"},
    "licensing": {"lo": 0.05, "hi": 0.5, "reason": "a licence regime has no volume cap: most civilian trade continues "
                                                   "after delays and some end uses are denied; 5–50 % of the flow "
                                                   "withheld over the episode is a judgement (no volumes in the catalogue)"},
    "tax": {"lo": 0.05, "hi": 0.2, "reason": "an export tax diverts part of the flow to domestic use; no tax event in "
                                             "the catalogue, judgement"},
    "disruption": {"lo": 0.5, "hi": 1.0, "reason": "physical disruption (conflict, border closure): China's imports of "
                                                   "rare earths from Myanmar fell 89 % y/y after the Kachin seizures "
                                                   "(scope note of MMR-2024-KACHIN) — the upper end; judgement for the range"},
}

#: Declared judgements on catalogue rows, each with its reason (style §5). ``exclude``: not a new
#: restriction of a material flow; ``relaxation``: eases earlier measures and ends them (``ends``) at its
#: effective date; ``duration_unknown``: counted as an event, left out of the duration sample.
EVENT_JUDGEMENTS: dict[str, dict[str, Any]] = {
    "CHN-WTO-DS431": {"action": "exclude", "reason": "the WTO dispute about the quota regime already counted as "
                                                     "CHN-2010-REE-QUOTA; its dates are the panel and Appellate Body "
                                                     "rulings, not a new measure"},
    "CHN-2015-QUOTA-END": {"action": "exclude", "reason": "abolished the volume quotas after the WTO ruling (licences "
                                                          "without a volume cap remain): an easing, not a new restriction"},
    "CHN-2025-NOV-70-SUSP": {"action": "relaxation", "ends": ["CHN-2025-OCT-57", "CHN-2025-OCT-58", "CHN-2025-OCT-61",
                                                               "CHN-2025-OCT-62"],
                             "reason": "Announcement No. 70 suspends Announcements 55–58, 61 and 62 of 9 Oct 2025 "
                                       "(scope note): those measures end on 7 Nov 2025"},
    "CHN-2025-US-BAN-SUSP": {"action": "relaxation", "ends": ["CHN-2024-US-BAN"],
                             "reason": "suspends the Dec 2024 in-principle ban on Ga/Ge/Sb/superhard exports to the US "
                                       "(scope note): that ban ends on 9 Nov 2025"},
    "CHN-2026-JPN-DUALUSE": {"action": "exclude", "reason": "applies to Japanese military end users/uses only; MOFCOM "
                                                            "said civilian users are unaffected and critmin models "
                                                            "civilian flows"},
    "CHN-2010-JPN-EMBARGO": {"action": "duration_unknown", "reason": "informal halt, denied by MOFCOM; its end is "
                                                                     "not documented (scope note), so it counts as an "
                                                                     "event but not as a duration"},
}

#: Catalogue stage → chain stage (the catalogue's own ``stage_id`` is used when present).
CATALOGUE_STAGES = {"ore": "mine", "processed": "refine", "product": "component"}
#: Judgement: the catalogue's ``processed`` (``stage_id`` refine) also covers critmin's ``metal`` stage. The
#: announcements list metals and alloys with the oxides (Ga and Ge metal in No. 23/2023, APT and tungsten
#: carbide in the Feb 2025 list, REE metals and alloys in No. 18/2025), and the network models rare-earth
#: metal and tungsten powders as a separate ``metal`` stage.
PROCESSED_STAGES = ("refine", "metal")


__all__ = ["ALL", "CATALOGUE_STAGES", "EVENT_JUDGEMENTS", "MAGNITUDES", "MEASURES", "PROCESSED_STAGES", "WILD"]
