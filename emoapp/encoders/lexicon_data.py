"""The English emotion word list of the baseline text encoder.

Written by hand for emoapp and licensed with it (Apache-2.0). It is NOT derived from the
NRC Emotion Lexicon (EmoLex, research-only licence) or any other restrictively licensed
lexicon: every entry below was chosen by the emoapp developers from ordinary English
usage. The word groups follow the canonical labels and, for what each label covers, the
GoEmotions-to-Ekman grouping emoapp uses elsewhere (happy takes in gratitude, admiration,
approval, love, optimism, relief, pride, amusement and desire; sad takes in disappointment,
embarrassment, grief and remorse; angry takes in annoyance and disapproval; fearful takes
in nervousness; surprised takes in realisation, confusion and curiosity).

Each label lists words at three strengths: ``strong`` (1.0), ``medium`` (0.7) and
``weak`` (0.4). A word may appear under more than one label (``amazing`` is happy and a
little surprised). Inflections are listed where they are common; the encoder also strips
regular suffixes (-s, -ed, -ing, -ly, -ness...) when a word is not found as written.
"""

from __future__ import annotations

from typing import Final

STRENGTHS: Final[dict[str, float]] = {"strong": 1.0, "medium": 0.7, "weak": 0.4}

WORDS: Final[dict[str, dict[str, str]]] = {
    "happy": {
        "strong": """
            happy happier happiest happily happiness joy joys joyful joyfully joyous
            glad gladly delighted delight delightful thrilled ecstatic elated overjoyed
            euphoric jubilant excited exciting excitement exhilarated exhilarating
            love loved loves loving lovely adore adored adores adoring adorable
            wonderful wonderfully amazing amazingly awesome fantastic fabulous brilliant
            excellent perfect perfectly beautiful beautifully gorgeous stunning magnificent
            marvelous marvellous splendid superb terrific glorious outstanding phenomenal
            grateful gratitude thankful thanks thank thx ty appreciate appreciated
            appreciates appreciating appreciation congrats congratulations congratulate
            proud pride cheerful cheers blessed blessing fortunate lucky
            hilarious lol lmao lmfao rofl haha hahaha hahahaha hehe heh yay yayy woohoo
            hooray hurray yippee enjoy enjoyed enjoying enjoys enjoyable pleased pleasure
            pleasant relieved relief hopeful optimistic optimism celebrate celebrated
            celebrating celebration bliss blissful ecstasy admire admired admiring
            admiration impressive impressed inspiring inspired inspirational heartwarming
            wholesome legend legendary genius masterpiece kudos bravo
            """,
        "medium": """
            great greatest good best better nice nicely cool sweet cute kind kindly
            fun funny smile smiles smiled smiling grin grinning laugh laughs laughed
            laughing laughter giggle giggling fond fondly cherish cherished treasure
            satisfied satisfying content contented comfy cozy merry jolly win wins
            winning won winner victory triumph success successful favorite favourite
            favorites favourites welcome welcomed hope hopes hoping hug hugs hugged
            kiss kisses heart hearts sweetheart darling friend friendship care cares
            caring supportive support supported respect respected enthusiastic
            enthusiasm eager thriving glow glowing sunshine paradise heaven heavenly
            incredible incredibly unreal epic handsome pretty charming
            helpful useful solid neat recommend recommended worth
            """,
        "weak": """
            liked likes liking agree agreed agrees agreeing yes yeah yep yup decent
            fair valid correct wish wishes wished wishing desire desired luck peace
            peaceful relaxing relaxed safe free freedom
            """,
    },
    "sad": {
        "strong": """
            sad sadder saddest sadly sadness unhappy unhappiness depressed depressing
            depression miserable misery heartbroken heartbreaking heartbreak heartache
            devastated devastating grief grieve grieving grieved mourn mourning mourned
            cry cries cried crying tears tearful teary weep weeping wept sob sobbing
            lonely loneliness hopeless hopelessness despair desperate gloomy sorrow
            sorrowful sorry regret regrets regretted regretting regretful remorse
            remorseful apologize apologise apologized apologised apologies apology
            disappointed disappointing disappointment disappoints letdown embarrassed
            embarrassing embarrassment ashamed shame humiliated humiliating humiliation
            guilty guilt tragic tragedy condolences rip bereaved melancholy gutted
            bummed bummer crushed miserably woeful wretched forlorn
            """,
        "medium": """
            hurt hurts hurting pain painful aching broken lost loss losing miss misses
            missed died dead death dies dying funeral suffer suffering suffered
            unfortunately unfortunate upset upsetting awkward cringe cringey cringy
            pity pitiful poor sigh sighs lonesome homesick hopelessly worthless
            failure failed fail fails failing defeated defeat down-hearted downhearted
            discouraged discouraging dismal bleak grim sucked sucky alone abandoned
            rejected rejection neglected unloved empty numb
            """,
        "weak": """
            bad worse worst terrible awful horrible tired exhausted drained sick ill
            missing struggle struggling struggled hard rough tough
            """,
    },
    "angry": {
        "strong": """
            angry angrier angriest angrily anger mad madder furious furiously fury rage
            raging enraged enraging outraged outrage outrageous livid irate pissed
            annoyed annoying annoyance annoys irritated irritating irritation irritates
            frustrated frustrating frustration hate hated hates hating hatred resent
            resented resentful resentment hostile hostility infuriating infuriated
            fuming seething wrathful wrath bitter bitterness vengeful disgraceful
            unacceptable ridiculous absurd pathetic idiot idiots idiotic moron morons
            moronic stupid stupidity dumb jerk jerks asshole assholes bastard bastards
            wtf fuck fucked fucks fuckin bullshit dammit goddamn screw screwed
            """,
        "medium": """
            damn damned shit crap crappy sucks suck ugh grr argh arrgh hmph disagree
            disagreed disagrees wrong unfair unjust injustice nonsense blame blamed
            blaming fault selfish rude rudely insult insulted insulting offended
            disrespect disrespectful arrogant ignorant liar liars lying lie lies cheat
            cheated cheating betrayed betrayal hypocrite hypocrisy hypocritical
            incompetent useless terrible horrible awful atrocious garbage trash
            clown clowns loser losers shameful shameless disgrace toxic obnoxious
            condescending entitled spiteful petty cruel evil wicked attack attacked
            fight fighting fought yell yelled yelling scream screamed shouting
            """,
        "weak": """
            nope nah stop stopped quit enough whatever bothered bothers bothering
            complain complaining complaint against problem problems boring bored
            overrated worse worst bad hell fucking
            """,
    },
    "fearful": {
        "strong": """
            afraid scared scary scare scares scaring fear fears feared fearful fearing
            frightened frightening fright terrified terrifying terrify terror horror
            horrified horrifying panic panicked panicking panicky anxious anxiously
            anxiety nervous nervously nervousness worried worry worrying worries
            worrisome dread dreaded dreading dreadful alarmed alarming petrified
            paranoid paranoia phobia spooked spooky creepy freaked
            nightmare nightmares traumatized traumatised trauma
            """,
        "medium": """
            threat threats threatened threatening danger dangerous unsafe uneasy tense
            tension stress stressed stressful concerned concern concerns insecure
            trembling shaking shaky overwhelmed overwhelming intimidating intimidated
            hesitant apprehensive timid nervy jittery jumpy restless helpless vulnerable
            risky scream screaming hide hiding flee fled emergency
            """,
        "weak": """
            risk risks careful caution cautious unsure uncertain doubt doubts shy
            """,
    },
    "disgusted": {
        "strong": """
            disgusting disgusted disgust disgusts gross grossed eww ew ewww yuck yucky
            nasty vile revolting revolted revulsion repulsive repulsed repugnant
            sickening nauseating nauseous nauseated filthy foul putrid loathe loathed
            loathing loathsome despicable abhorrent abhor appalling appalled sleazy
            slimy creep creeps pervert perverted degenerate scum scumbag
            """,
        "medium": """
            rotten stink stinks stinky stank smelly barf puke puked vomit vomited
            distasteful offensive sick sickened horrible horrid hideous ugly grotesque
            dirty unclean contaminated rancid moldy mouldy greasy sticky cringeworthy
            shameful immoral indecent obscene trashy
            """,
        "weak": """
            smell odor odour slime germs cockroach cockroaches maggots
            """,
    },
    "surprised": {
        "strong": """
            surprised surprise surprises surprising surprisingly shocked shocking shock
            shocks astonished astonishing astonishment amazed astounded astounding
            stunned startled startling flabbergasted dumbfounded speechless
            unexpected unexpectedly unbelievable unbelievably wow whoa woah omg omfg
            gasp gasped jaw-dropping mindblown mind-blown
            """,
        "medium": """
            wonder wondering wondered curious curiosity confused confusing confusion
            puzzled puzzling baffled baffling bewildered perplexed intrigued intriguing
            weird weirdly strange strangely odd oddly realize realized realizes
            realizing realise realised realising realization realisation sudden
            suddenly huh hmm hm whaaat wut
            """,
        "weak": """
            interesting interested incredible incredibly amazing unreal apparently
            learned learnt discover discovered why
            """,
    },
    "neutral": {
        "strong": "",
        "medium": "calm calmly",
        "weak": """
            ok okay alright fine meh maybe perhaps probably normal usual usually
            regular average ordinary
            """,
    },
}

PHRASES: Final[dict[str, list[tuple[str, float]]]] = {
    "thank you": [("happy", 1.0)],
    "thanks so much": [("happy", 1.2)],
    "well done": [("happy", 1.0)],
    "good job": [("happy", 1.0)],
    "good luck": [("happy", 0.7)],
    "can't wait": [("happy", 1.0)],
    "cannot wait": [("happy", 1.0)],
    "looking forward": [("happy", 0.8)],
    "made my day": [("happy", 1.0)],
    "so much fun": [("happy", 1.2)],
    "love it": [("happy", 1.2)],
    "oh no": [("sad", 0.5), ("fearful", 0.5)],
    "let down": [("sad", 0.9)],
    "broke my heart": [("sad", 1.2)],
    "miss you": [("sad", 0.8)],
    "feel bad": [("sad", 0.8)],
    "rest in peace": [("sad", 1.0)],
    "fed up": [("angry", 1.0)],
    "sick of": [("angry", 1.0)],
    "tired of": [("angry", 0.8)],
    "pissed off": [("angry", 1.2)],
    "shut up": [("angry", 1.0)],
    "what the hell": [("angry", 0.8), ("surprised", 0.4)],
    "what the fuck": [("angry", 0.9), ("surprised", 0.5)],
    "how dare": [("angry", 1.0)],
    "freaked out": [("fearful", 1.0)],
    "freaking out": [("fearful", 1.0)],
    "scared of": [("fearful", 1.0)],
    "grossed out": [("disgusted", 1.0)],
    "makes me sick": [("disgusted", 1.0)],
    "oh my god": [("surprised", 1.0)],
    "oh my gosh": [("surprised", 1.0)],
    "no way": [("surprised", 0.9)],
    "not sure": [("surprised", 0.5)],
    "no idea": [("surprised", 0.6)],
    "didn't know": [("surprised", 0.7)],
    "did not know": [("surprised", 0.7)],
    "had no idea": [("surprised", 0.8)],
    "never knew": [("surprised", 0.7)],
    "can't believe": [("surprised", 1.0)],
    "cannot believe": [("surprised", 1.0)],
    "who knew": [("surprised", 0.8)],
}
"""Multi-word expressions, matched before single words (so ``can't wait`` is not a
negated ``wait``)."""

EMOTICONS: Final[dict[str, str]] = {
    ":)": "happy",
    ":-)": "happy",
    "(:": "happy",
    ":]": "happy",
    "=)": "happy",
    ":D": "happy",
    ":-D": "happy",
    "xD": "happy",
    "XD": "happy",
    ";)": "happy",
    ";-)": "happy",
    ":P": "happy",
    ":-P": "happy",
    ":p": "happy",
    "<3": "happy",
    "^_^": "happy",
    "^^": "happy",
    ":3": "happy",
    ":(": "sad",
    ":-(": "sad",
    "):": "sad",
    ":[": "sad",
    ":'(": "sad",
    ":’(": "sad",
    "T_T": "sad",
    "T.T": "sad",
    ";_;": "sad",
    "</3": "sad",
    ":c": "sad",
    ">:(": "angry",
    ">:-(": "angry",
    ">:[": "angry",
    "-_-": "angry",
    ">_<": "angry",
    "D:": "fearful",
    "D=": "fearful",
    ":S": "fearful",
    ":s": "fearful",
    ":O": "surprised",
    ":o": "surprised",
    ":-O": "surprised",
    ":-o": "surprised",
    "o_O": "surprised",
    "O_o": "surprised",
    "o.O": "surprised",
    "O.o": "surprised",
    "O_O": "surprised",
    "0_0": "surprised",
    ":/": "angry",
    ":-/": "angry",
}
"""Text emoticons. ``:/`` is mild annoyance; ``-_-`` exasperation."""

EMOJI: Final[dict[str, str]] = {
    **dict.fromkeys(
        "😀😃😄😁😆😊🙂😉😍🥰😘😗😙😚☺😋😛😜😝🤗🤩🥳😎😇🙌👏👍💪🎉🎊✨🌟"
        "❤🧡💛💚💙💜🤍🤎💖💗💓💞💕💝💘😻😸😺😂🤣😹🥲💯🙏🌈🌞🌻🌸",
        "happy",
    ),
    **dict.fromkeys("😢😭😞😔😟🙁☹😿💔🥺😥😪😓🥀😩😫", "sad"),
    **dict.fromkeys("😠😡🤬👿💢😤👎🖕😒🙄", "angry"),
    **dict.fromkeys("😨😱😰😧😬🫣😖", "fearful"),
    **dict.fromkeys("🤢🤮🤧💩😷", "disgusted"),
    **dict.fromkeys("😮😲😯🤯😳😵🫢❗❓⁉‼🙀", "surprised"),
    **dict.fromkeys("😐😑😶🫤", "neutral"),
}

_NEGATOR_WORDS = """
    not no never none nobody nothing nowhere neither nor without hardly barely scarcely
    cannot cant dont doesnt didnt isnt wasnt arent werent wont wouldnt shouldnt couldnt
    aint havent hasnt hadnt mustnt neednt lack lacks lacking
    """
NEGATORS: Final[frozenset[str]] = frozenset(_NEGATOR_WORDS.split())
"""Words that negate what follows; any token ending in ``n't`` negates too."""

INTENSIFIERS: Final[dict[str, float]] = {
    "very": 1.5,
    "really": 1.4,
    "so": 1.4,
    "extremely": 1.8,
    "incredibly": 1.7,
    "absolutely": 1.6,
    "totally": 1.5,
    "completely": 1.5,
    "utterly": 1.7,
    "super": 1.5,
    "truly": 1.4,
    "deeply": 1.5,
    "highly": 1.4,
    "too": 1.3,
    "quite": 1.2,
    "most": 1.3,
    "such": 1.3,
    "insanely": 1.7,
    "terribly": 1.5,
    "awfully": 1.4,
    "seriously": 1.3,
    "genuinely": 1.3,
    "especially": 1.3,
    "particularly": 1.2,
    "freaking": 1.5,
    "fucking": 1.5,
    "bloody": 1.4,
    "damn": 1.3,
    "hella": 1.5,
    "mega": 1.4,
    "ultra": 1.4,
    "pretty": 1.2,
    "fairly": 0.8,
    "rather": 1.1,
    "much": 1.2,
    "more": 1.2,
    "slightly": 0.5,
    "somewhat": 0.6,
    "mildly": 0.5,
    "kinda": 0.7,
    "sorta": 0.7,
    "bit": 0.6,
    "little": 0.6,
    "less": 0.6,
    "moderately": 0.7,
    "almost": 0.7,
}
"""Multipliers for the next emotion word (within two words). ``pretty``, ``damn`` and
``freaking`` are emotion words of their own when nothing emotional follows."""

CLAUSE_BREAKERS: Final[frozenset[str]] = frozenset(
    {"but", "however", "although", "though", "yet", "except"}
)
"""A negation does not reach past these (``not great but happy``)."""
