"""Word lists of the person-name recognizer: common given names and surnames of many languages, and the
capitalized words that are never names. Plain data, in the Latin alphabet only."""

from __future__ import annotations

FIRST_NAMES = frozenset(
    """
Aaron Abigail Adaeze Adam Agnieszka Ahmed Aiko Aisha Alan Albert Alejandra Alejandro Alessia Alexander Alexei Alexis
Ali Alice Allison Amanda Amara Amelia Amelie Amit Amy Ana Ananya Anders Andrea Andrei Andres Andrew Angela Anil
Anjali Ann Anna Anneke Annika Anthony Antoine Antonio Anya Arjun Arthur Ashley Astrid Audrey Austin Avery Ayesha
Barbara Beatrice Beatriz Benjamin Betty Bianca Billy Bjorn Bobby Bradley Brandon Brenda Brian Brianna Brittany Bruce
Bryan Caleb Camila Camille Carl Carlos Carmen Carol Caroline Carolyn Catherine Charles Charlotte Chelsea Cheryl
Chiara Chinedu Chioma Chloe Christian Christina Christine Christopher Claire Colette Courtney Cynthia Daniel Daniela
David Deborah Debra Dennis Diana Diane Diego Divya Dmitri Donald Donna Doris Dorothy Douglas Dylan Eduardo Edward
Ekaterina Eleanor Elena Elijah Elin Elisa Elizabeth Ella Emeka Emily Emma Eric Erik Erin Ethan Eugene Evan Evelyn
Fatima Felix Fernanda Fernando Finn Florence Frances Francesca Francisco Freya Gabriel Gabriela Gary George Gerald
Giovanni Giulia Gloria Gregory Gwendolyn Hana Hanna Hannah Hao Harold Harper Harriet Haruto Hassan Heather Helen
Henrik Henry Hiroshi Hugo Hui Hussein Ian Ibrahim Imogen Ines Ingrid Irina Isaac Isabel Isabella Ivan Jack Jacob
Jacqueline James Jan Janet Janice Jasmine Jason Javier Jean Jeffrey Jenna Jennifer Jeremy Jerry Jesse Jessica Jian
Jisoo Jiwoo Joan Joe Johanna John Jonas Jonathan Jordan Jose Joseph Joshua Joyce Juan Judith Judy Julia Julian Julie
Julien Juliette Jun Justin Kaitlyn Karen Karim Karin Katarzyna Katharina Katherine Kathleen Kathryn Kavya Kayla
Keith Kelly Kenji Kenneth Kevin Kimberly Kiran Kofi Kwame Kyle Lakshmi Lan Larry Lars Laura Lauren Lawrence Layla
Lea Leah Leila Lena Leo Leonie Li Liam Linda Lindsay Lisa Logan Lorenzo Louis Luca Lucas Lucia Lucy Luis Lukas Luke
Madison Magdalena Manon Manuel Marco Marcus Margaret Margaux Maria Mariam Mariana Martha Martina Mary Mason Mateo
Mathieu Matteo Matthew Megan Mei Melissa Meredith Mia Michael Michelle Miguel Mikael Mikhail Ming Minho Minji
Mohamed Mohammed Molly Monica Morgan Mustafa Nadia Naledi Nancy Natalie Natasha Nathan Neha Ngozi Nia Nicholas
Nicolas Nicole Nils Noah Noemi Noor Olga Oliver Olivia Oluwaseun Omar Oscar Owen Pablo Pamela Patricia Patrick Paul
Paula Pavel Peter Philip Phoebe Pierre Piotr Pooja Priya Rachel Rafael Rahul Raj Ralph Ramesh Randy Ravi Rebecca
Renee Ricardo Richard Robert Roger Rohan Ronald Rosalind Roy Russell Ryan Sakura Samantha Samuel Sana Sandra Sanjay
Sara Sarah Scarlett Scott Sean Seojun Seoyeon Sergei Sergio Sharon Shirley Sigrid Sipho Sneha Sofia Sophia Sophie
Sota Stefan Stephanie Stephen Steven Suresh Susan Sven Svetlana Takeshi Tamara Tariq Tatiana Taylor Teresa Terry
Thabo Thandiwe Thomas Tiffany Timothy Tobias Tomasz Tunde Tyler Valentina Vanessa Veronica Victor Victoria Vikram
Vincent Walter Wanjiru Wayne Wei Whitney William Willie Xiu Yan Yasmin Yuki Yumi Yusuf Yvonne Zachary Zainab Zoe
Zuri
""".split()  # noqa: SIM905 - a word list reads best as words
)
"""Given names that mark a capitalized word as a name wherever it stands (unless also in AMBIGUOUS_NAMES)."""

AMBIGUOUS_NAMES = frozenset(
    """
Ali Amber Amy Ana Ann April Art August Aurora Austin Autumn Avery Bill Brook Brooklyn Camille Carl Carolina Chase
Chelsea Christian Crystal Daisy Dakota Dawn Dean Denver Don Drew Faith Florence Forest Frank Gene Georgia Glen Grace
Guy Hana Hao Harper Heather Holly Hope Houston Hui Hunter India Iris Ivy Jack Jan Jasmine Jian Jordan Joy Jun June
Juniper Kerry King Lan Lea Lena Leo Li Lily Louis Lucas Madison Major Mark May Mei Ming Morgan Nia Noor Olive Page
Paris Pat Pearl Penny Phoenix Prince Raj Ray Rich River Rose Roy Ruby Sage Sandy Savannah Sierra Sky Skye Stone Sue
Summer Sunny Sydney Taylor Victoria Violet Virginia Wei Will Willow Winter Xiu Yan
""".split()  # noqa: SIM905 - a word list reads best as words
)
"""Given names that are also common words, places or brands ("May", "Austin", "Chase"): a name only after a
cue ("my name is", "Ms.") or before a known surname."""

SURNAMES = frozenset(
    """
Adams Adeyemi Aguilar Ahmed Alexander Allen Alvarado Alvarez Anderson Andersson Andrews Armstrong Arnold Bailey
Baker Bakker Barnes Becker Bell Bennett Bernard Berry Bianchi Black Boateng Bose Boyd Bradley Braun Brooks Brown
Bruno Bryant Burns Butler Byrne Campbell Carpenter Carroll Carter Castillo Castro Chavez Chen Cho Choi Chowdhury
Clark Cole Coleman Collins Colombo Conti Contreras Cook Cooper Costa Cox Crawford Cruz Cunningham Daniels Das Davies
Davis Dekker Delgado Demir Diaz Dixon Dlamini Doe Doherty Doyle Dubois Duncan Dunn Durand Edwards Elliott Ellis
Eriksson Esposito Evans Ferguson Fernandez Ferrari Fischer Fisher Flores Ford Foster Fox Fraser Freeman Gallagher
Gallo Gao Garcia Gardner Garza Gibson Gomez Gonzales Gonzalez Gordon Graham Grant Gray Greco Green Griffin Guo Gupta
Gutierrez Guzman Hall Hamilton Hansen Harris Harrison Hart Hawkins Hayes He Henderson Henry Hernandez Herrera Hicks
Hill Hoffman Hofmann Holmes Horvath Howard Hu Huang Hudson Hughes Hunt Hunter Hussain Ito Ivanov Iyer Jackson James
Jang Jansen Janssen Jenkins Jimenez Johansson Johnson Johnston Jones Jordan Jung Kang Karlsson Kaya Kelley Kelly
Kennedy Khan Kim King Klein Knight Kobayashi Koch Kovacs Kowalski Kumar Lane Lange Larsson Laurent Lawrence Lee
Lefebvre Leroy Lewis Lim Lin Liu Lloyd Lombardi Long Lopez Luo Lynch Ma MacDonald Malik Mancini Marino Marshall
Martin Martinez Mason Matthews McCarthy McDonald McLaughlin Medina Mehta Mendez Mendoza Mensah Meyer Michel Miller
Mills Mitchell Moore Morales Moreau Moreno Morgan Morris Morrison Mueller Muller Munoz Murphy Murray Mwangi Myers
Nair Nakamura Nelson Neumann Nguyen Nichols Nielsen Nilsson Nkosi Novak Nowak OBrien Okafor Okonkwo Olsen Olson
Ortiz Osei Otieno Owens Palmer Papadopoulos Park Parker Patel Patterson Payne Pena Perez Perkins Perry Peters
Peterson Petit Petrov Phillips Pierce Popescu Porter Powell Price Quinn Qureshi Rahman Ramirez Ramos Rao Ray Reddy
Reed Reid Reyes Reynolds Ricci Rice Richards Richardson Richter Riley Rivera Roberts Robertson Robinson Rodriguez
Rogers Romano Romero Rose Ross Rossi Ruiz Russell Russo Ryan Salazar Sanchez Sanders Sandoval Santos Sato Schmidt
Schneider Schroeder Schulz Scott Shah Sharma Shaw Silva Simmons Simpson Singh Smirnov Smit Smith Snyder Soto Spencer
Stephens Stevens Stewart Stone Sullivan Sun Suzuki Takahashi Tanaka Taylor Thomas Thompson Torres Tran Tucker Turner
Vargas Vasquez Vazquez Visser Wagner Walker Wallace Walsh Wang Ward Warren Washington Watanabe Watson Weaver Webb
Weber Wells West White Williams Willis Wilson Wisniewski Wolf Wood Woods Wright Wu Xu Yamamoto Yang Yilmaz Yoon
Young Zhang Zhao Zhou Zhu Zimmermann
""".split()  # noqa: SIM905 - a word list reads best as words
)

STOPWORDS = frozenset(
    """
A About Account African After Afternoon Again All Also Am Amazon American Amex An And Any Anyone Apple April Apt Are
As Asian At August Austin Australia Australian Avenue Back Backpack Bag Be Because Been Before Berlin Best Boots
Boston Both Brazilian British But By Bye California Call Can Canada Canadian Card Cheers Chicago China Chinese
Christmas Co Color Colorado Colour Company Corp Could Customer Cyber DHL Danish Day Dear December Denver Department
Dept Did Discover Do Does Done Dr Dublin Dutch East Easter Email England English European Even Evening Ever Every
Everybody Everyone February FedEx Finnish Folks For France French Friday Friends From Fwd Gear German Germany Get
Glad Gmail Good Goodbye Google Great Guys Had Halloween Happy Has Have He Headlamp Hello Help Her Here Hey Hi Him
His Hope Hopefully How However I If In Inc India Indian Ireland Irish Is It Italy Item Items Its Jacket January
Japan Japanese July June Just Kind Korean Lake Large Let Light Lite London Looking Ltd Madam Madrid Manager Many
March Mastercard Max May Maybe Me Medium Mexican Mexico Mini Model Monday More Morning Most Mountain Mr Mrs Ms Much
Mx My National Need New Next Night No Nor North Northwind Norway Norwegian Not November Now October Of Oh Ok Okay On
Once One Only Or Order Orders Oregon Our Outfitters Outlook Pack Paris Park PayPal Phone Please Plus Polish Portland
Prime Pro Product Products Prof Re Refund Regards Regular Return Returns River Road Rome Russian Same Saturday
Scotland Scottish Seattle See September Service Services Shall She Shop Should Since Sincerely Sir Size Small So
Some Sorry South Spain Spanish Still Store Stove Street Subject Suite Sunday Support Sure Sweden Swedish Team Tent
Texas Thank Thanks That The Their Them Then There These They This Those Though Thursday Thx To Today Tokyo Tomorrow
Too Trail Tuesday UPS USPS Ultra Ultralight Unit Up Us Utah Very Visa Wales Want Warm Was Waterproof We Wednesday
Weekend Well Welsh Were West What When Where Which While Who Why Will With Would Yahoo Yes Yesterday Yet York You
Your Yours
""".split()  # noqa: SIM905 - a word list reads best as words
)
"""Capitalized words that end a name or are never one: sentence openers, months, weekdays, brands, places."""
