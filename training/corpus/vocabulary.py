"""Vocabulary of the synthetic corpus, by semantic category.

Every list is lowercase ASCII, one word per entry (phrases only in ``TIME_PHRASES``). The
categories are chosen so that the sentence grammar in :mod:`training.corpus.text` can combine
them into sentences that make sense: a person eats a food, feeds an animal, carries an object,
walks to a building, and so on. Verbs are ``(base, past)`` pairs.
"""

from __future__ import annotations


def _words(block: str) -> tuple[str, ...]:
    seen, out = set(), []
    for w in block.split():
        if w not in seen:
            seen.add(w)
            out.append(w)
    return tuple(out)


def _verbs(block: str) -> tuple[tuple[str, str], ...]:
    seen, out = set(), []
    for item in block.split():
        base, past = item.split("/")
        if base not in seen:
            seen.add(base)
            out.append((base, past))
    return tuple(out)


def _phrases(block: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in block.split(",") if p.strip())


PEOPLE = _words("""
farmer teacher doctor nurse baker butcher sailor pilot driver painter writer singer dancer builder
plumber carpenter gardener cook chef waiter waitress soldier captain fisherman hunter miner tailor
barber student scientist lawyer judge banker clerk cashier librarian postman porter guard officer
sheriff mayor king queen prince princess knight bishop priest monk nun poet actor actress artist
musician drummer pianist violinist guitarist photographer reporter editor engineer mechanic
electrician architect surgeon dentist pharmacist shopkeeper merchant trader grocer florist jeweler
potter weaver shepherd cowboy ranger explorer traveler tourist visitor stranger neighbor friend
cousin uncle aunt nephew niece brother sister mother father grandmother grandfather grandson
granddaughter husband wife daughter son baby child boy girl teenager pupil professor tutor coach
athlete runner swimmer climber skier cyclist boxer wrestler referee umpire goalkeeper player
champion winner guest host landlord landlady tenant servant maid butler nanny babysitter lifeguard
firefighter detective thief robber prisoner witness clown magician juggler acrobat inventor
astronomer biologist chemist historian geologist philosopher novelist journalist announcer manager
director secretary assistant receptionist janitor cleaner courier messenger blacksmith locksmith
watchmaker shoemaker carpenter sculptor composer conductor violinist ballerina gymnast jockey
beggar pirate wizard witch giant dwarf hermit nomad pilgrim peasant squire duke duchess emperor
empress governor senator diplomat ambassador chairman treasurer accountant auditor broker dealer
salesman saleswoman butler steward stewardess conductor commander general sergeant corporal admiral
lieutenant colonel major warden jailer attendant usher caretaker housekeeper gamekeeper woodcutter
lumberjack stonemason bricklayer roofer glazier welder tanner cobbler miller brewer vintner
herdsman milkmaid dairyman poultryman fishmonger greengrocer newsagent bookseller stationer
optician surveyor navigator lookout deckhand stoker signalman engineer lecturer headmaster
headmistress principal schoolboy schoolgirl toddler infant youngster orphan widow widower bride
groom fiance partner colleague classmate roommate flatmate companion rival enemy ally hero heroine
villain champion
gardener florist ferryman boatman fisherwoman oarsman coxswain harpist flautist cellist organist
soprano tenor baritone choirboy chorister storyteller puppeteer ventriloquist comedian
illusionist stuntman ringmaster zookeeper ranger botanist zoologist
ecologist ornithologist entomologist meteorologist cartographer archaeologist anthropologist
linguist translator interpreter librarian archivist curator collector auctioneer antiquarian""")

NAMES = _words("""
anna ben carla daniel emma frank grace henry isabel jack julia kevin laura mark nina oliver paula
quentin rachel samuel tara victor wendy xavier yvonne zachary alice brian chloe david ella felix
george hannah ian jane kate leo maria nathan olivia peter rose simon tom ursula vincent william amy
adam bella charlie dora edward fiona gavin helen isaac jessica karl lily martin nora oscar polly
robert sarah thomas walter zoe albert beatrice carl diana eric flora gordon holly ivan joseph katie
lucas mary neil owen patrick ruth steven tina vera arthur bruce clara dennis esther fred gloria
harold irene james lucy michael naomi otto philip rita sophie tim violet alan betty colin doris
ernest freya gilbert hazel joel lena miles nancy percy rebecca stella theo ada boris cecilia derek
edith floyd greta hugo ingrid jasper leah max molly norman opal roger sylvia toby uma wade yasmin
zara alfred bianca cyril daisy elliot fanny gregory hector iris jonah kim louis mabel nigel ophelia
quinn ralph susan trevor valerie warren agnes bernard connor deborah elaine fergus gemma harvey
imogen jeremy kenneth lionel marcus nadia orla rupert sebastian tobias vivian winston yolanda
abigail benedict camilla dominic eleanor francis gwendolyn horace ivy jemima keith lorna matilda
nicholas octavia prudence reginald rosalind theodore ulrich veronica wilfred""")

ANIMALS = _words("""
dog cat horse cow pig donkey mule rabbit hamster mouse rat squirrel fox wolf deer moose elk bison
buffalo camel llama alpaca zebra giraffe elephant rhino hippo lion tiger leopard cheetah panther
jaguar monkey gorilla chimpanzee baboon kangaroo koala wombat otter beaver badger hedgehog mole
skunk raccoon weasel ferret owl eagle hawk falcon crow raven pigeon dove sparrow robin parrot
canary swan goose chicken hen rooster turkey peacock ostrich penguin seagull pelican heron stork
flamingo crane frog toad turtle tortoise lizard snake crocodile alligator salmon trout shark whale
dolphin walrus octopus crab lobster snail spider ant beetle butterfly moth wasp ladybird
grasshopper cricket worm caterpillar dragonfly puppy kitten foal piglet duckling chick cub bull ox
pony stallion mare hound terrier poodle spaniel collie beagle greyhound sheepdog tomcat lynx puma
cougar hyena jackal coyote antelope gazelle reindeer porcupine armadillo sloth lemur meerkat
chipmunk gerbil guinea vulture condor albatross puffin kingfisher woodpecker magpie starling
blackbird thrush finch wren nightingale lark cuckoo budgie cockatoo toucan hummingbird mosquito
firefly cockroach scorpion jellyfish starfish seahorse squid oyster mussel shrimp eel carp pike
cod tuna herring sardine goldfish stingray iguana gecko chameleon python cobra viper newt
salamander tadpole
mongoose marmot vole shrew dormouse stoat mink wildcat ocelot serval caracal bobcat
wolverine yak gnu okapi tapir warthog aardvark pangolin anteater platypus echidna wallaby
possum bandicoot quokka kiwi emu cassowary kestrel buzzard osprey kite harrier plover curlew
sandpiper lapwing moorhen coot grebe cormorant gannet tern skua bittern egret ibis spoonbill""")

FOODS = _words("""
apple banana orange lemon lime peach plum cherry grape melon watermelon pineapple mango kiwi
coconut apricot fig berry strawberry raspberry blueberry blackberry gooseberry tomato potato
carrot onion cucumber pepper lettuce cabbage turnip radish pumpkin squash zucchini eggplant
mushroom olive avocado sandwich burger pizza pie tart cookie biscuit muffin cupcake doughnut
waffle croissant bagel pretzel sausage egg omelette steak cutlet noodle dumpling taco burrito
salad pudding custard lollipop toffee caramel sundae loaf roll bun cracker walnut almond hazelnut
chestnut parsnip beetroot leek celery broccoli cauliflower sprout artichoke asparagus spinach
kale garlic ginger chili lentil chickpea grapefruit tangerine clementine nectarine pomegranate
papaya guava lychee cranberry currant raisin prune date quince rhubarb scone crumpet brownie
flapjack pastry strudel eclair meringue macaroon trifle jelly cheesecake turnover samosa kebab
meatball hotdog fritter pancake crepe quiche risotto lasagna casserole omelet sushi
omelette flatbread tortilla baguette brioche focaccia ciabatta pita naan chapati scone shortbread
gingerbread cinnamon doughnut popover biscotti cannoli tiramisu baklava pavlova souffle fondue
goulash paella pilaf biryani ramen udon gnocchi ravioli tortellini cannelloni dumpling spring
roll wonton bun cornbread muffin pancake crumble cobbler parfait mousse sorbet gelato
marshmallow nougat fudge praline truffle bonbon jellybean gumdrop liquorice""")

FOODS_MASS = _words("""
bread rice soup pasta cheese butter honey milk sugar flour salt porridge cereal yogurt cream
chocolate toast bacon chicken beef lamb mutton pork fish spaghetti macaroni stew curry gravy
mustard ketchup vinegar oil syrup popcorn granola oatmeal couscous tofu salami pepperoni""")
# "lamb", "pork" and "fish" are listed for completeness; held-out words are removed per split.

DRINKS = _words("""
tea coffee juice water lemonade cocoa soda cider smoothie milkshake broth punch""")

OBJECTS = _words("""
book pencil notebook letter envelope stamp key wallet purse basket box parcel package ticket
compass clock phone camera radio candle torch lantern mirror comb brush toothbrush towel blanket
pillow cushion umbrella ring necklace bracelet earring brooch badge medal trophy kite doll puzzle
toy balloon drum flute guitar violin trumpet whistle string thread needle button ribbon plate
spoon knife jar bottle kettle teapot tray bucket jug vase spade shovel hammer saw drill wrench
screwdriver axe ladder helmet shield sword arrow flag banner poster painting picture photo
postcard calendar diary newspaper magazine suitcase backpack briefcase sponge bucket broom
dustpan ruler eraser stapler crayon marker paintbrush canvas easel globe
telescope microscope magnifier lens battery bulb cable charger laptop keyboard tablet
speaker headphone microphone remote calculator typewriter printer sewing thimble spool yarn
basket hamper crate barrel chest locket pendant tiara crown sceptre wand scroll parchment quill
inkpot candlestick chandelier rug carpet curtain tablecloth napkin doormat kettle saucepan skillet
ladle whisk grater peeler sieve colander rolling teaspoon tablespoon saucer goblet tankard flask
thermos lunchbox toolbox birdcage aquarium cradle pram stroller wheelbarrow hose sprinkler
hoe trowel pitchfork scythe sickle lawnmower padlock chain hook nail screw bolt plank brick tile
pebble shell feather acorn pinecone marble dice domino chessboard jigsaw rattle yoyo frisbee
skateboard racket harmonica accordion banjo cello harp tambourine
xylophone recorder bugle
wristwatch stopwatch hourglass sundial thermometer barometer funnel bellows tongs stepladder
toolbelt glue paperclip pushpin thumbtack clipboard folder binder notepad sketchbook
logbook album scrapbook atlas dictionary encyclopedia cookbook hymnbook songbook storybook textbook
bookmark bookend paperweight inkwell fountain figurine statuette ornament trinket keepsake souvenir
medallion amulet talisman perfume lipstick hairbrush hairpin headband bandana handkerchief
shoehorn clothespin washboard kettledrum lute mandolin ukulele bagpipe
ocarina gong metronome easel palette chisel mallet crowbar pliers pincers spanner 
anvil bellows lasso harness saddle bridle stirrup horseshoe whip leash collar muzzle kennel
birdbath fishbowl terrarium flowerpot planter trellis hosepipe """)

FURNITURE = _words("""
table desk bench stool sofa couch shelf cupboard wardrobe drawer cabinet bookcase dresser armchair
bedside counter sideboard crib hammock rocker footstool ottoman""")

CONTAINERS = _words("""
box basket jar bottle bucket crate barrel drawer suitcase backpack
chest hamper tray""")

CLOTHING = _words("""
jacket sweater jumper shirt blouse skirt dress shoe boot sandal slipper scarf
glove mitten belt tie apron uniform cloak cape gown hood bonnet helmet waistcoat overcoat tunic
kimono sari poncho leotard tracksuit swimsuit bikini tuxedo blazer cardigan hoodie beanie beret
turban sombrero stocking bootlace shoelace sneaker trainer clog moccasin""")

VEHICLES = _words("""
car bus truck taxi train tram bicycle motorbike scooter tractor lorry jeep wagon carriage sled
sleigh ferry yacht canoe kayak raft submarine airplane plane helicopter rocket ambulance caravan
trailer minibus limousine bulldozer digger forklift glider barge tugboat
speedboat rowboat gondola""")

ROOMS = _words("""
kitchen bedroom bathroom hallway attic cellar basement garage pantry study lounge parlor nursery
workshop office classroom conservatory laundry storeroom cloakroom""")

BUILDINGS = _words("""
market bakery library school hospital station church museum theater cinema restaurant cafe hotel
bank shop store supermarket pharmacy factory warehouse castle palace tower prison courthouse
stadium gym zoo barn mill airport lighthouse temple chapel cathedral university college
playground cemetery bookshop butchery dairy brewery laundrette
inn tavern pub cottage farmhouse mansion bungalow cabin shed greenhouse stable
kennel aviary observatory gallery studio bakehouse
bookstore toyshop sweetshop bakeshop teashop coffeehouse boathouse lodge hostel motel
guesthouse boardinghouse almshouse workhouse schoolhouse clubhouse firehouse roundhouse
signalbox tollbooth gatehouse watchtower windmill watermill sawmill forge smithy foundry tannery
distillery winery creamery cannery hatchery nursery orphanage infirmary clinic surgery dispensary""")

NATURE_PLACES_IN = _words("""
forest wood meadow field valley desert jungle swamp marsh orchard vineyard garden park canyon cave
woodland grove clearing moor heath prairie savanna lagoon quarry farm pasture paddock allotment
countryside hills mountains woods""")

NATURE_PLACES_BY = _words("""
river pond stream beach shore cliff island bay coast harbor riverbank hillside hill mountain
glacier volcano waterfall reef dune creek brook spring sea ocean""")

NATURE_PLACES = NATURE_PLACES_IN + NATURE_PLACES_BY

TOWNS = _words("""
london paris berlin madrid rome vienna prague dublin lisbon oslo stockholm helsinki copenhagen
amsterdam brussels zurich geneva athens cairo tokyo beijing delhi mumbai sydney melbourne toronto
montreal boston chicago denver seattle houston dallas miami atlanta phoenix portland detroit
memphis nashville glasgow edinburgh cardiff belfast manchester liverpool leeds bristol oxford
cambridge york brighton dover venice florence naples milan barcelona seville valencia munich
hamburg warsaw budapest bucharest istanbul moscow kiev lima santiago quito havana nairobi lagos
accra casablanca tunis marseille lyon bordeaux nice antwerp rotterdam bergen reykjavik""")

PLANTS = _words("""
rose tulip daisy lily sunflower daffodil violet orchid poppy lavender marigold carnation
geranium pansy peony iris snowdrop bluebell buttercup dandelion clover thistle fern ivy moss
cactus bamboo oak pine birch maple willow elm ash beech cedar chestnut palm olive fig lemon
cherry apple plum hazel holly rosemary thyme basil mint parsley sage chive fennel dill coriander
lettuce tomato pumpkin cucumber strawberry raspberry blackberry vine hedge shrub bush seedling
sapling cutting bulb weed nettle heather magnolia camellia jasmine honeysuckle hyacinth lilac
begonia fuchsia azalea primrose foxglove cornflower""")

GOODS = _words("""
apples grain wool timber coal cotton silk spices tea coffee sugar salt oranges lemons bananas
furniture books tools toys carpets barrels crates potatoes cheese wine oil rice flour""")

SPORTS = _words("""
football tennis cricket hockey rugby golf baseball basketball volleyball chess badminton""")

INSTRUMENTS = _words("""
piano guitar violin flute drum trumpet cello harp banjo accordion clarinet saxophone trombone
harmonica""")

ADJ_SIZE = _words("""
small little large tiny huge giant enormous tall short long wide narrow heavy massive slender
stout plump skinny round square flat deep shallow""")

ADJ_COLOR = _words("""
red blue green yellow orange purple pink brown black white grey golden silver crimson scarlet
violet navy turquoise beige ivory bronze copper emerald amber""")

ADJ_AGE = _words("""
old new young ancient modern fresh antique recent brand""")

ADJ_CONDITION = _words("""
clean dirty broken shiny dusty rusty dry warm hot cool soft hard smooth rough sharp blunt empty
heavy bright dark quiet loud strange lovely pretty ugly fancy plain simple expensive precious rare
common useful useless fragile sturdy wooden metal plastic leather woolen cotton paper
silky fluffy sticky greasy wrinkled faded torn tattered spotless polished
painted crooked bent curved striped spotted checked patterned colorful bare hollow solid valuable
favorite spare extra ordinary special famous mysterious magic beautiful handsome elegant shabby
gleaming glittering sparkling glowing dim dull matte glossy transparent opaque waterproof
heatproof foldable portable adjustable removable reusable disposable handmade homemade secondhand
vintage rustic sleek bulky lightweight flimsy delicate dainty chunky lopsided
battered dented scratched chipped cracked stained scorched frayed threadbare""")

ADJ_MOOD = _words("""
happy sad angry tired sleepy hungry thirsty brave kind gentle clever wise foolish lazy busy calm
nervous proud shy polite rude cheerful grumpy lonely curious patient friendly anxious excited
bored careful careless cautious confident cruel eager fierce generous greedy honest humble jolly
jealous loyal merry modest noisy playful quiet serious silly sincere stubborn thoughtful timid
weary worried cheeky clumsy cunning daring helpful hopeful joyful lively
mischievous nosy puzzled relaxed restless sensible sleepy smart strict sweet tidy untidy witty""")

ADJ_TASTE = _words("""
sweet sour salty bitter spicy tasty delicious fresh ripe crunchy juicy creamy warm crisp tender
tangy smoky savory bland stale soggy sticky chewy moldy rotten frozen toasted roasted boiled
baked homemade organic""")

ADJ_ANIMAL_COLOR = _words("""
brown black white grey golden spotted striped speckled ginger tawny""")

ADJ_PLANT = _words("""
tall young tiny wild climbing flowering healthy tender rare fragrant thirsty drooping sturdy
purple yellow white pink red blue orange golden""")

ADJ_WEATHER = _words("""
sunny rainy windy cloudy foggy snowy stormy frosty misty chilly freezing humid bright gloomy""")

ADVERBS = _words("""
slowly quickly quietly loudly carefully gently happily sadly suddenly eagerly calmly patiently
politely proudly nervously bravely softly firmly kindly angrily anxiously boldly briskly cheerfully
clumsily curiously gladly gracefully hastily honestly lazily merrily neatly noisily openly
playfully quietly rapidly rudely shyly silently smoothly sternly swiftly tenderly thoughtfully
warmly wearily wildly""")

NUMBERS = _words("two three four five six seven eight nine ten twelve twenty")

TIME_PHRASES = _phrases("""
yesterday, today, tonight, this morning, this afternoon, this evening, last night, last week,
last month, last year, on monday, on tuesday, on wednesday, on thursday, on friday, on saturday,
on sunday, after lunch, before dinner, after school, after work, at noon, at midnight, at dawn,
at dusk, in the morning, in the evening, every day, every morning, every evening, once again,
all day, in the spring, in the summer, in the autumn, in the winter, during the storm,
before breakfast, after breakfast, on the weekend, at the weekend, in january, in march, in may,
in july, in september, in november, a week ago, two days ago, an hour ago, the next day,
later that day, early in the morning, late at night, at sunrise, at sunset, on her birthday,
on his birthday, over the holidays, during the festival, before the race, after the concert""")

PREPS_ROOM = ("in", "in", "in", "near", "outside")
PREPS_BUILDING = ("at", "near", "behind", "outside", "beside", "across from")
PREPS_NATURE_IN = ("in", "in", "near", "beyond", "outside")
PREPS_NATURE_BY = ("by", "near", "beside", "along", "on")

# Transitive verbs, by the kind of object they take.
VERBS_OBJECT = _verbs("""
carry/carried drop/dropped find/found lose/lost buy/bought sell/sold clean/cleaned move/moved
lift/lifted hide/hid wrap/wrapped borrow/borrowed lend/lent bring/brought take/took keep/kept
hold/held check/checked photograph/photographed examine/examined inspect/inspected
collect/collected pack/packed unpack/unpacked deliver/delivered send/sent receive/received
return/returned offer/offered choose/chose pick/picked want/wanted need/needed like/liked
love/loved admire/admired notice/noticed spot/spotted see/saw forget/forgot remember/remembered
steal/stole order/ordered donate/donated swap/swapped trade/traded grab/grabbed store/stored
guard/guarded replace/replaced unwrap/unwrapped display/displayed describe/described
label/labelled sort/sorted sketch/sketched weigh/weighed wash/washed dry/dried hand/handed
pass/passed rent/rented mend/mended repair/repaired fix/fixed test/tested win/won
recognise/recognised measure/measured study/studied""")

VERBS_FOOD = _verbs("""
eat/ate cook/cooked bake/baked slice/sliced chop/chopped taste/tasted serve/served boil/boiled
roast/roasted grill/grilled buy/bought order/ordered mix/mixed stir/stirred smell/smelled
finish/finished save/saved pack/packed grab/grabbed devour/devoured
nibble/nibbled munch/munched toast/toasted freeze/froze warm/warmed heat/heated cool/cooled
weigh/weighed wrap/wrapped offer/offered steal/stole sell/sold grow/grew pick/picked
prepare/prepared enjoy/enjoyed swallow/swallowed crave/craved dice/diced mash/mashed""")

VERBS_ANIMAL = _verbs("""
feed/fed chase/chased follow/followed brush/brushed catch/caught train/trained walk/walked
photograph/photographed rescue/rescued find/found call/called frighten/frightened groom/groomed
stroke/stroked tame/tamed adopt/adopted spot/spotted track/tracked release/released carry/carried
hold/held admire/admired draw/drew count/counted study/studied protect/protected comfort/comforted
wake/woke greet/greeted scare/scared""")

VERBS_PERSON = _verbs("""
meet/met help/helped call/called visit/visited thank/thanked greet/greeted invite/invited
follow/followed teach/taught warn/warned hug/hugged join/joined remember/remembered
recognise/recognised surprise/surprised interview/interviewed hire/hired pay/paid forgive/forgave
trust/trusted praise/praised phone/phoned comfort/comforted encourage/encouraged guide/guided
rescue/rescued wake/woke amuse/amused annoy/annoyed admire/admired congratulate/congratulated
introduce/introduced miss/missed notice/noticed question/questioned thank/thanked""")

VERBS_INTRANS_PERSON = _verbs("""
sleep/slept laugh/laughed smile/smiled cry/cried sing/sang dance/danced wait/waited rest/rested
write/wrote work/worked play/played shout/shouted whisper/whispered cough/coughed sneeze/sneezed
yawn/yawned sigh/sighed swim/swam run/ran walk/walked jump/jumped climb/climbed wander/wandered
travel/travelled arrive/arrived stay/stayed hide/hid kneel/knelt stand/stood listen/listened
study/studied think/thought cook/cooked paint/painted relax/relaxed knit/knitted whistle/whistled
hum/hummed giggle/giggled shiver/shivered stretch/stretched nap/napped skate/skated ski/skied
jog/jogged hike/hiked""")

VERBS_INTRANS_ANIMAL = _verbs("""
sleep/slept run/ran jump/jumped rest/rested hide/hid play/played wait/waited wander/wandered
swim/swam eat/ate drink/drank hunt/hunted nap/napped shiver/shivered stretch/stretched
yawn/yawned dig/dug roam/roamed crawl/crawled""")

VERBS_MOTION = _verbs("""
walk/walked run/ran hurry/hurried drive/drove cycle/cycled ride/rode travel/travelled
return/returned go/went come/came rush/rushed stroll/strolled march/marched wander/wandered
race/raced dash/dashed jog/jogged""")

VERBS_VEHICLE = _verbs("""
drive/drove park/parked clean/cleaned repair/repaired paint/painted buy/bought sell/sold
steer/steered stop/stopped start/started rent/rented borrow/borrowed inspect/inspected
photograph/photographed""")

CATEGORIES = {
    "people": PEOPLE,
    "names": NAMES,
    "animals": ANIMALS,
    "foods": FOODS,
    "foods_mass": FOODS_MASS,
    "drinks": DRINKS,
    "objects": OBJECTS,
    "furniture": FURNITURE,
    "containers": CONTAINERS,
    "clothing": CLOTHING,
    "vehicles": VEHICLES,
    "rooms": ROOMS,
    "buildings": BUILDINGS,
    "nature_places": NATURE_PLACES,
    "towns": TOWNS,
    "goods": GOODS,
    "plants": PLANTS,
    "adj_animal_color": ADJ_ANIMAL_COLOR,
    "adj_plant": ADJ_PLANT,
    "sports": SPORTS,
    "instruments": INSTRUMENTS,
    "adj_size": ADJ_SIZE,
    "adj_color": ADJ_COLOR,
    "adj_age": ADJ_AGE,
    "adj_condition": ADJ_CONDITION,
    "adj_mood": ADJ_MOOD,
    "adj_taste": ADJ_TASTE,
    "adj_weather": ADJ_WEATHER,
    "adverbs": ADVERBS,
    "numbers": NUMBERS,
}
